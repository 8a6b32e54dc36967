from django.db import models

from sagaboard.kernel.columns import PointsColumn


class Account(models.Model):
    holder_id = models.CharField(max_length=64, primary_key=True)
    point = PointsColumn(default=0)

    class Meta:
        ordering = ["holder_id"]

    def __str__(self):
        return f"{self.holder_id}: {self.point} points"


class Grant(models.Model):
    """Points given to a holder (POST /points): the ledger the balance is checked against."""

    holder_id = models.CharField(max_length=64, db_index=True)
    point = PointsColumn()
    event_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.point} points granted to {self.holder_id}"


class Spend(models.Model):
    """The seed's Transaction: points spent on an order; at most one per order (idempotency)."""

    order_id = models.BigIntegerField(unique=True)
    holder_id = models.CharField(max_length=64, db_index=True)
    point = PointsColumn()
    created_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.point} points spent by {self.holder_id} on order {self.order_id}" + (" (refunded)" if self.refunded_at else "")


class Tombstone(models.Model):
    order_id = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"tombstone of order {self.order_id}"


class Adjustment(models.Model):
    """An operator's correction of a balance (PointsAdjusted), applied once: the checker counts it."""

    holder_id = models.CharField(max_length=64, db_index=True)
    point = PointsColumn(help_text="added to the balance; negative takes points away")
    operator = models.CharField(max_length=150)
    reason = models.CharField(max_length=255)
    order_id = models.BigIntegerField(null=True, blank=True, help_text="the order it corrects, if any")
    event_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.point} points for {self.holder_id} by {self.operator}: {self.reason}"
