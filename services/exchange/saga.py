"""The exchange service: exchanges an order's amount into points, and undoes it on rejection."""
from django.conf import settings

from sagaboard.kernel import faults
from sagaboard.kernel.fields import exchanged, format_points
from sagaboard.kernel.service import Abort, Service, dropped, ignored

from .models import Exchange, Tombstone

service = Service("exchange")
SLOW_BEFORE_EXPIRY_CHECK = "100"  # the seed's fault: sleep, then find the event expired
SLOW_AFTER_EXPIRY_CHECK = "200"  # the seed's fault: check, then sleep while the event expires


async def seed_delays(event):
    """Outside the transaction: the seed's injected delays around its expiry check of OrderCreated
    (both policies check here, as the seed did)."""
    currency = str(event.payload["currencyId"])
    if currency == SLOW_BEFORE_EXPIRY_CHECK:
        await faults.sleep(settings.SAGA_FAULT_DELAY_SECONDS)
    if event.expired():
        return dropped("OrderCreated arrived after the deadline")
    if currency == SLOW_AFTER_EXPIRY_CHECK:
        await faults.sleep(settings.SAGA_FAULT_DELAY_SECONDS)
    return None


@service.handles("OrderCreated", before=seed_delays)
def exchange(event, ctx):
    p = event.payload
    safe = event.policy == "safe"
    if safe and ctx.has(Tombstone):
        return ignored("order already compensated")
    if safe and event.expired():
        return dropped("OrderCreated expired while the exchange was busy")
    if str(p["currencyId"]) in settings.SAGA_FAILING_CURRENCIES:
        ctx.emit("ExchangeFailed", {**p, "reason": f"currency {p['currencyId']} cannot be exchanged"})
        return None
    point = exchanged(p["amount"], settings.SAGA_EXCHANGE_RATE)
    Exchange.objects.create(
        order_id=event.orderId, holder_id=p["holderId"], currency_id=str(p["currencyId"]), amount=p["amount"], point=point
    )
    if safe and event.expired():  # the re-check just before commit narrows the window to the commit
        raise Abort(dropped("OrderCreated expired before the exchange committed"))
    ctx.effect(exchange="created", point=format_points(point))
    ctx.emit("ExchangeSucceeded", {**p, "point": format_points(point)})
    return None


@service.handles("OrderRejected")
def compensate(event, ctx):
    removed, _ = Exchange.objects.filter(order_id=event.orderId).delete()
    if removed:
        ctx.effect(exchange="removed")
    if event.policy == "safe":
        Tombstone.objects.get_or_create(order_id=event.orderId)
    ctx.emit(
        "ExchangeCompensated",
        {"compensated": bool(removed), "holderId": event.payload.get("holderId"),
         "note": "exchange removed" if removed else "nothing to undo: no exchange was made"},
    )
