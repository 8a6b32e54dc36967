from django.db import models

from sagaboard.kernel.columns import PointsColumn


class Exchange(models.Model):
    """A currency exchange made for an order; deleted when the order is compensated (as in the seed)."""

    order_id = models.BigIntegerField(unique=True)
    holder_id = models.CharField(max_length=64)
    currency_id = models.CharField(max_length=32)
    amount = models.BigIntegerField()
    point = PointsColumn(help_text="amount × SAGA_EXCHANGE_RATE, rounded to 0.01 half to even")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"exchange of order {self.order_id}: {self.amount} of currency {self.currency_id} for {self.holder_id}"


class Tombstone(models.Model):
    """This order was compensated here: a forward event arriving later must not act on it."""

    order_id = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"tombstone of order {self.order_id}"
