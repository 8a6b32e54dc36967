"""The monitor: records every delivery on the topic into the event log the dashboard reads."""
from django.conf import settings
from django.db import IntegrityError, transaction

from sagaboard.kernel.consumer import Service
from sagaboard.kernel.events import Event, InvalidEvent

from .models import EventLog


class EventLogService(Service):
    def accept(self, record):
        try:
            event = Event.from_bytes(record.value, settings.SAGA_MAX_EVENT_BYTES)
        except InvalidEvent as exc:
            self.dead_letter(record, str(exc))
            return None
        try:
            with transaction.atomic(using=self.name):
                EventLog.objects.create(
                    event_id=event.eventId, event_type=event.eventType, order_id=event.orderId, source=event.source,
                    policy=event.policy, causation_id=event.causationId, timestamp=event.timestamp,
                    deadline=event.deadline, payload=event.payload,
                    topic=record.topic, partition=record.partition, offset=record.offset,
                )
        except IntegrityError:
            pass  # this delivery is already recorded (redelivered after a crash)
        return None


service = EventLogService("monitor")
