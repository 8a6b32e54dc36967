from django.db import models


class EventLog(models.Model):
    """Every event seen on the topic, with where it was: the record the dashboard and /events read.
    A redelivered copy of an event (same eventId, another offset) is kept as its own row."""

    event_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=64)
    order_id = models.BigIntegerField(null=True, db_index=True)
    source = models.CharField(max_length=32)
    policy = models.CharField(max_length=8)
    causation_id = models.UUIDField(null=True)
    timestamp = models.BigIntegerField()
    deadline = models.BigIntegerField(null=True)
    payload = models.JSONField()
    topic = models.CharField(max_length=255)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["event_id", "partition", "offset"], name="eventlog_delivery")]

    def __str__(self):
        return f"{self.event_type} #{self.order_id} at {self.topic}[{self.partition}]@{self.offset}"
