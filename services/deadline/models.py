from django.db import models


class Deadline(models.Model):
    ARMED, FIRED, DISARMED = "armed", "fired", "disarmed"
    order_id = models.BigIntegerField(unique=True)
    due_at = models.BigIntegerField(help_text="ms since the epoch")
    status = models.CharField(max_length=10, default=ARMED)
    policy = models.CharField(max_length=8, default="safe")
    cause_id = models.UUIDField(null=True, help_text="the OrderCreated that armed it")
    fired_at = models.BigIntegerField(null=True, help_text="ms since the epoch")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self):
        return f"deadline of order {self.order_id}: {self.status}"
