from django.db import models

PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED_POINT_LIMIT = "REJECTED DUE TO POINT LIMIT"
REJECTED_DEADLINE = "REJECTED DUE TO DEADLINE"
REJECTED_EXCHANGE = "REJECTED DUE TO EXCHANGE ERROR"
REJECTED_OPERATOR = "REJECTED BY OPERATOR"
STATUSES = (PENDING, APPROVED, REJECTED_POINT_LIMIT, REJECTED_DEADLINE, REJECTED_EXCHANGE, REJECTED_OPERATOR)
TERMINAL = STATUSES[1:]


class Order(models.Model):
    holder_id = models.CharField(max_length=64, db_index=True)
    currency_id = models.CharField(max_length=32)
    amount = models.BigIntegerField()
    policy = models.CharField(max_length=8, default="safe")
    status = models.CharField(max_length=40, choices=[(s, s) for s in STATUSES], default=PENDING, db_index=True)
    reason = models.CharField(max_length=255, blank=True)
    deadline = models.BigIntegerField(help_text="ms since the epoch")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"order {self.id} {self.status}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class StatusChange(models.Model):
    """Every status an order took, and the event that made it so: the checker reads this."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="changes")
    from_status = models.CharField(max_length=40)
    to_status = models.CharField(max_length=40)
    event_id = models.UUIDField(null=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"order {self.order_id}: {self.from_status} → {self.to_status}"
