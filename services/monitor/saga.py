"""The monitor: records every delivery on the topic into the event log the dashboard reads."""
from django.db import transaction

from sagaboard.kernel.batch import BatchResult, dead_letter_row
from sagaboard.kernel.models import DeadLetter
from sagaboard.kernel.service import Service

from .models import EventLog


class EventLogService(Service):
    """Every valid event is recorded as delivered (a redelivered copy at another offset too: the
    log shows what the topic held), each batch in one bulk insert; a copy already recorded (the
    same event at the same partition and offset, read again after a crash) is skipped by the
    database. What is not an event is dead-lettered, as by every consumer."""

    records_everything = True

    def apply_batch(self, deliveries):
        rows, letters = [], []
        for d in deliveries:
            if d.event is None:
                letters.append(dead_letter_row(d.record, d.error))
                continue
            e, r = d.event, d.record
            rows.append(EventLog(
                event_id=e.eventId, event_type=e.eventType, order_id=e.orderId, source=e.source, policy=e.policy,
                causation_id=e.causationId, timestamp=e.timestamp, deadline=e.deadline, payload=e.payload,
                topic=r.topic, partition=r.partition, offset=r.offset,
            ))
        with transaction.atomic(using=self.name):
            EventLog.objects.using(self.name).bulk_create(rows, ignore_conflicts=True)
            DeadLetter.objects.using(self.name).bulk_create(letters)
        return BatchResult(finished=list(deliveries))


service = EventLogService("monitor", critical_path=False)
