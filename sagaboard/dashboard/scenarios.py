"""One-click scenarios of the seed's walkthrough (README, "The original walkthrough"), launched by
the board. Each places its order(s) with the same commands as the JSON API; "exchange down" also
stops the exchange through supervision and starts it again once the deadline has passed, in a
background thread bounded in time."""
from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

from django.conf import settings
from django.db import close_old_connections

from sagaboard import supervision
from services.order.models import TERMINAL, Order
from services.order.services import place_order
from services.point.models import Account
from services.point.services import grant_points

log = logging.getLogger(__name__)
HOLDER = "jjy"
GRANT = 10000
AMOUNT = 500
POINT_LIMIT_AMOUNT = 50000


def ensure_points(holder: str, need: int) -> Decimal:
    """Grant the seed's 10,000 points when the holder has fewer than `need`; returns the balance."""
    account = Account.objects.filter(holder_id=holder).first()
    if account is None or account.point < need:
        account = grant_points(holder_id=holder, point=Decimal(GRANT))
    return account.point


def happy_path(holder):
    ensure_points(holder, AMOUNT)
    return [place_order(holder_id=holder, currency_id="1", amount=AMOUNT)]


def point_limit(holder):
    balance = ensure_points(holder, 0)
    return [place_order(holder_id=holder, currency_id="1", amount=max(POINT_LIMIT_AMOUNT, int(balance) + 1))]


def exchange_down(holder):
    ensure_points(holder, AMOUNT)
    supervision.stop("exchange")
    try:
        order = place_order(holder_id=holder, currency_id="1", amount=AMOUNT)
    except BaseException:
        supervision.start("exchange")
        raise
    threading.Thread(target=_start_exchange_after_deadline, args=(order.id,), daemon=True, name="scenario-exchange-down").start()
    return [order]


def _start_exchange_after_deadline(order_id: int) -> None:
    """Start the exchange again once the order was rejected by its deadline (bounded: the
    deadline plus 10 s at most), so it finds and drops the expired OrderCreated."""
    try:
        end = time.monotonic() + settings.SAGA_DEADLINE_SECONDS + 10
        while time.monotonic() < end:
            if Order.objects.filter(pk=order_id, status__in=TERMINAL).exists():
                break
            time.sleep(0.2)
    finally:
        try:
            supervision.start("exchange")
        except Exception:
            log.exception("scenario 'exchange down' could not start the exchange again")
        close_old_connections()


def currency_100(holder):
    ensure_points(holder, AMOUNT)
    return [place_order(holder_id=holder, currency_id="100", amount=AMOUNT)]


def currency_200_safe_and_naive(holder):
    ensure_points(holder, 2 * AMOUNT)
    return [place_order(holder_id=holder, currency_id="200", amount=AMOUNT, policy=policy) for policy in ("safe", "naive")]


SCENARIOS = {
    "happy-path": ("Happy path", "order 500 of currency 1: exchanged, points used, APPROVED", happy_path),
    "point-limit": ("Point limit", "order more than the balance: REJECTED DUE TO POINT LIMIT, exchange compensated", point_limit),
    "exchange-down": ("Exchange down", "stop the exchange, order, start it after the deadline: REJECTED DUE TO DEADLINE, the late OrderCreated dropped", exchange_down),
    "currency-100": ("currencyId 100", "the exchange sleeps before its expiry check: REJECTED DUE TO DEADLINE, the late OrderCreated dropped", currency_100),
    "currency-200": ("currencyId 200, safe and naive", "the exchange sleeps after its expiry check: safe stays REJECTED; naive flips to APPROVED (anomaly)", currency_200_safe_and_naive),
}


def launch(name: str, holder: str = HOLDER) -> list[Order]:
    return SCENARIOS[name][2](holder)
