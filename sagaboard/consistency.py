"""The consistency checker: one function that lists every anomaly across the services.

It reads each service's database (only the web process and admin may), and judges only settled
orders: terminal, and with no event for a grace period, so a compensation still under way is not
reported. Each anomaly names the order (or holder), the rule and the evidence.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db.models import Max, Sum

from services.exchange.models import Exchange
from services.monitor.models import EventLog
from services.order.models import APPROVED, PENDING, REJECTED_OPERATOR, TERMINAL, Order, StatusChange
from services.point.models import Account, Adjustment, Grant, Spend


@dataclass(frozen=True)
class Anomaly:
    rule: str
    evidence: str
    orderId: int | None = None
    holderId: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def check(order_ids=None) -> list[Anomaly]:
    """Every anomaly, or only those of the given orders (plus holder balances then skipped)."""
    grace_ms = settings.SAGA_CONSISTENCY_GRACE_SECONDS * 1000
    now = time.time() * 1000
    orders = Order.objects.all()
    if order_ids is not None:
        orders = orders.filter(pk__in=order_ids)
    orders = list(orders.values("id", "holder_id", "status", "deadline", "updated_at"))
    ids = [o["id"] for o in orders]
    selected = (lambda qs: qs.filter(order_id__in=ids)) if order_ids is not None else (lambda qs: qs)
    exchanges = {e["order_id"]: e for e in selected(Exchange.objects.all()).values("order_id", "point")}
    spends = defaultdict(list)
    for s in selected(Spend.objects.filter(refunded_at__isnull=True)).values("order_id", "point"):
        spends[s["order_id"]].append(s["point"])
    last_event = dict(selected(EventLog.objects.exclude(order_id=None)).values_list("order_id").annotate(t=Max("timestamp")))
    terminal_changes = defaultdict(list)
    for c in StatusChange.objects.filter(to_status__in=TERMINAL, order_id__in=ids).values("order_id", "to_status").order_by("id"):
        terminal_changes[c["order_id"]].append(c["to_status"])

    anomalies = []
    for o in orders:
        oid, status = o["id"], o["status"]
        if status == PENDING:
            if now > o["deadline"] + grace_ms:
                anomalies.append(Anomaly("pending-past-deadline", f"still PENDING {int(now - o['deadline'])} ms after its deadline", oid, o["holder_id"]))
            continue
        quiet_since = max(o["updated_at"].timestamp() * 1000, last_event.get(oid, 0))
        if now - quiet_since < grace_ms:
            continue  # not settled yet: its compensation may still be under way
        history = terminal_changes.get(oid, [])
        if REJECTED_OPERATOR in history:  # an operator's rejection settles the changes before it
            history = history[len(history) - 1 - history[::-1].index(REJECTED_OPERATOR):]
        if len(history) > 1:
            anomalies.append(Anomaly("terminal-status-changed", " → ".join(history), oid, o["holder_id"]))
        exchange, live = exchanges.get(oid), spends.get(oid, [])
        if status == APPROVED:
            if exchange is None:
                anomalies.append(Anomaly("approved-without-exchange", "order APPROVED but no exchange exists", oid, o["holder_id"]))
            if len(live) != 1:
                anomalies.append(Anomaly("approved-spend-count", f"order APPROVED with {len(live)} live spends (want exactly 1)", oid, o["holder_id"]))
            elif exchange is not None and live[0] != exchange["point"]:
                anomalies.append(Anomaly("approved-spend-mismatch", f"spend {live[0]} ≠ exchange point {exchange['point']}", oid, o["holder_id"]))
        else:
            if exchange is not None:
                anomalies.append(Anomaly("rejected-with-exchange", f"order {status} but its exchange of {exchange['point']} points remains", oid, o["holder_id"]))
            if live:
                anomalies.append(Anomaly("rejected-with-spend", f"order {status} but {sum(live)} points stay spent (not refunded)", oid, o["holder_id"]))
    if order_ids is None:
        anomalies += check_balances()
    return anomalies


def check_balances() -> list[Anomaly]:
    """Per holder: balance = granted ± manual adjustments − live spends, exactly (points are
    whole hundredths in the databases: no tolerance)."""
    granted = dict(Grant.objects.values_list("holder_id").annotate(total=Sum("point")))
    adjusted = dict(Adjustment.objects.values_list("holder_id").annotate(total=Sum("point")))
    spent = dict(Spend.objects.filter(refunded_at__isnull=True).values_list("holder_id").annotate(total=Sum("point")))
    anomalies = []
    for holder, balance in Account.objects.values_list("holder_id", "point"):
        g, a, s = granted.get(holder, 0), adjusted.get(holder, 0), spent.get(holder, 0)
        expected = g + a - s
        if balance != expected:
            anomalies.append(Anomaly(
                "balance-mismatch",
                f"balance {balance} ≠ granted {g} ± adjustments {a:+} − live spends {s} = {expected}",
                holderId=holder,
            ))
    return anomalies
