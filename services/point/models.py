from django.db import models

from sagaboard.kernel.columns import PointsColumn


class Account(models.Model):
    holder_id = models.CharField(max_length=64, primary_key=True)
    point = PointsColumn(default=0)

    class Meta:
        ordering = ["holder_id"]


class Grant(models.Model):
    """Points given to a holder (POST /points): the ledger the balance is checked against."""

    holder_id = models.CharField(max_length=64, db_index=True)
    point = PointsColumn()
    event_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Spend(models.Model):
    """The seed's Transaction: points spent on an order; at most one per order (idempotency)."""

    order_id = models.BigIntegerField(unique=True)
    holder_id = models.CharField(max_length=64, db_index=True)
    point = PointsColumn()
    created_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["id"]


class Tombstone(models.Model):
    order_id = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)


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
