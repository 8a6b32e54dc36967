"""Tables the kernel keeps in every service's database (each row belongs to that service)."""
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxMessage(models.Model):
    """An event written in the same transaction as the state change that caused it."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=64)
    order_id = models.BigIntegerField(null=True, db_index=True)
    key = models.CharField(max_length=128)
    body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
        ]

    def __str__(self):
        return f"{self.event_type} #{self.order_id} ({'published' if self.published_at else 'pending'})"


class InboxRecord(models.Model):
    """An event this service has handled, written with the handler's effect (exactly-once effect)."""

    APPLIED, IGNORED, DROPPED = "applied", "ignored", "dropped"
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=64)
    order_id = models.BigIntegerField(null=True, db_index=True)
    outcome = models.CharField(max_length=16, default=APPLIED)
    reason = models.CharField(max_length=255, blank=True)
    partition = models.IntegerField(null=True)
    offset = models.BigIntegerField(null=True)
    handled_at = models.DateTimeField(auto_now_add=True)
    # What the handler changed, as it said so itself (Context.effect) in the transaction of the
    # change: {"status": ["PENDING", "APPROVED"]}, {"points": "-100.00", "balance": "9900.00"},
    # {"exchange": "created", "point": "100.00"}, {"deadline": "armed", "dueAt": ms}. Null: nothing.
    effect = models.JSONField(null=True)
    published_at_ms = models.BigIntegerField(null=True, help_text="the Kafka record's timestamp, ms since the epoch")
    received_at_ms = models.BigIntegerField(null=True, help_text="when this service's consumer took the record, ms since the epoch")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.event_type} #{self.order_id}: {self.outcome}"


class DeadLetter(models.Model):
    """A record this service could not take: the original bytes, where it was, and why."""

    topic = models.CharField(max_length=255)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    key = models.BinaryField(null=True)
    value = models.BinaryField(null=True)
    headers = models.JSONField(default=list)
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # set when an operator re-delivered it (sagaboard/corrections.py): who, when and why
    replayed_at = models.DateTimeField(null=True, blank=True)
    replayed_by = models.CharField(max_length=150, blank=True)
    replay_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.topic}[{self.partition}]@{self.offset}: {self.error[:60]}"


class Lease(models.Model):
    """A named lease in a service's database (sagaboard/kernel/leases.py): "relay" picks the one
    process that publishes the outbox, so events leave in the order they were written;
    "partition:N" gives partition N of the topic to one process of the service."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires_at = models.FloatField()

    def __str__(self):
        return f"{self.name} held by {self.holder}"


class ProcessHeartbeat(models.Model):
    """What a running service process reports about itself, for health checks and the dashboard."""

    process = models.CharField(max_length=128, primary_key=True)
    service = models.CharField(max_length=32)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    assignment = models.JSONField(default=list)
    lag = models.BigIntegerField(default=0)
    handled = models.BigIntegerField(default=0)
    parked_since = models.DateTimeField(null=True, help_text="waiting for a doorbell since (kernel/doorbell.py); null while it fetches")

    def __str__(self):
        return f"{self.process} ({self.service}, pid {self.pid})"

    @classmethod
    def live(cls, using: str, seconds: float):
        """The rows of processes that beat within the last `seconds` (a killed process leaves a
        stale row behind)."""
        return cls.objects.using(using).filter(seen_at__gte=timezone.now() - timedelta(seconds=seconds))


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key and the answer its first request got (sagaboard/idempotency.py),
    kept in the database of the service the request changed, written with the change."""

    scope = models.CharField(max_length=300, help_text="user, method and path")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the method, path and body")
    status = models.PositiveSmallIntegerField()
    body = models.TextField(help_text="the answer's JSON")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_once")]

    def __str__(self):
        return f"{self.scope} {self.key}"
