"""What the dashboard's pages show, read from the services' databases (the web process may read
them all, like the checker). Plain functions returning JSON-ready dicts: the views serve them and
the feed pushes some of them over the socket."""
from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator

from sagaboard import consistency as checker, supervision
from sagaboard.api import OutcomeSerializer, _state, fresh_heartbeats, inbox_records
from sagaboard.kernel.models import InboxRecord
from services.deadline.api import DeadlineSerializer
from services.deadline.models import Deadline
from services.monitor.api import EventLogSerializer
from services.monitor.models import EventLog
from services.order.api import OrderDetailSerializer, OrderSerializer
from services.order.models import PENDING, STATUSES, Order

PAGE_SIZE = 50
# The event that ends a rejected saga's compensation, per policy (safe: chained; naive: fan-out).
COMPENSATION_END = {"safe": "PointUseCompensated", "naive": "ExchangeCompensated"}


def ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


# --- the board ------------------------------------------------------------------------------------
def board(*, page=1, status="", holder="", order_id="", ids=None) -> dict:
    """One page of orders, newest first, with each order's step and badges."""
    orders = Order.objects.order_by("-id")
    if ids is not None:
        orders = orders.filter(pk__in=ids)
    if status:
        orders = orders.filter(status__startswith=status) if status == "REJECTED" else orders.filter(status=status)
    if holder:
        orders = orders.filter(holder_id=holder)
    if order_id:
        orders = orders.filter(pk=order_id)
    pages = Paginator(orders, PAGE_SIZE)
    current = pages.get_page(page)
    rows = rows_of(list(current.object_list))
    return {
        "page": current.number,
        "pages": pages.num_pages,
        "count": pages.count,
        "pageSize": PAGE_SIZE,
        "statuses": list(STATUSES),
        "orders": rows,
    }


def rows_of(orders: list[Order]) -> list[dict]:
    ids = [o.id for o in orders]
    types_by_order: dict[int, list[str]] = {}
    last_at: dict[int, int] = {}
    for order_id, event_type, timestamp in EventLog.objects.filter(order_id__in=ids).order_by("id").values_list("order_id", "event_type", "timestamp"):
        types_by_order.setdefault(order_id, []).append(event_type)
        last_at[order_id] = max(timestamp, last_at.get(order_id, 0))
    anomalies: dict[int, list[dict]] = {}
    for anomaly in checker.check(ids) if ids else []:
        anomalies.setdefault(anomaly.orderId, []).append(anomaly.as_dict())
    rows = []
    for order, data in zip(orders, OrderSerializer(orders, many=True).data, strict=True):
        types = types_by_order.get(order.id, [])
        rows.append({
            **data,
            "createdAtMs": ms(order.created_at),
            "step": types[-1] if types else None,
            "stepAt": last_at.get(order.id),  # timestamp of the newest event the monitor has recorded
            "badges": badges(order, types),
            "anomalies": anomalies.get(order.id, []),
        })
    return rows


def badges(order: Order, types: list[str]) -> list[str]:
    if order.status == PENDING or order.status.startswith("APPROVED") or "OrderRejected" not in types:
        return []
    return ["compensated"] if COMPENSATION_END.get(order.policy, "PointUseCompensated") in types else ["compensating"]


def consistency() -> dict:
    anomalies = [a.as_dict() for a in checker.check()]
    return {"count": len(anomalies), "anomalies": anomalies}


# --- the service panel ----------------------------------------------------------------------------
def services(lag: dict | None = None) -> list[dict]:
    """Each service: supervised state, consumer lag (end offsets − its group's committed offsets,
    or what its live processes report when that is unknown), the last event it handled, and for
    the deadline service the deadlines armed now."""
    lag = lag or {}
    supervised = supervision.processes()
    result = []
    for service in settings.SERVICES:
        processes = [p for p in supervised if p["group"] == service]
        beats = fresh_heartbeats(service, "process", "lag", "handled", "assignment")
        if service == "monitor":
            last = EventLog.objects.order_by("-id").values("event_type", "order_id", "recorded_at").first()
            last = last and {"eventType": last["event_type"], "orderId": last["order_id"], "at": ms(last["recorded_at"])}
        else:
            last = InboxRecord.objects.using(service).order_by("-id").values("event_type", "order_id", "outcome", "handled_at").first()
            last = last and {"eventType": last["event_type"], "orderId": last["order_id"], "outcome": last["outcome"], "at": ms(last["handled_at"])}
        committed_lag = lag.get(service)
        entry = {
            "name": service,
            "state": _state(processes),
            "processes": [{"name": p["name"], "state": p["statename"]} for p in processes],
            "lag": committed_lag if committed_lag is not None else sum(b["lag"] for b in beats),
            "lagSource": "committed offsets" if committed_lag is not None else "live processes",
            "handled": sum(b["handled"] for b in beats),
            "lastEvent": last,
        }
        if service == "deadline":
            entry["armed"] = Deadline.objects.filter(status=Deadline.ARMED).count()
        result.append(entry)
    return result


# --- one saga ---------------------------------------------------------------------------------------
def saga(order_id: int) -> dict | None:
    """Everything the order page draws: the order and its status history, its events with their
    partition and offset, how each service handled each event, its deadline and its verdict."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return None
    events = EventLog.objects.filter(order_id=order_id).order_by("id")
    outcomes = inbox_records(order_id)
    deadline = Deadline.objects.filter(order_id=order_id).first()
    anomalies = [a.as_dict() for a in checker.check([order_id])]
    return {
        "order": {**OrderDetailSerializer(order).data, "createdAtMs": ms(order.created_at)},
        "events": EventLogSerializer(events, many=True).data,
        "outcomes": [{**data, "handledAtMs": ms(r.handled_at)} for r, data in zip(outcomes, OutcomeSerializer(outcomes, many=True).data, strict=True)],
        "deadline": DeadlineSerializer(deadline).data if deadline else None,
        "consistency": {"count": len(anomalies), "anomalies": anomalies},
    }


def event_filters() -> dict:
    """The choices of the events explorer's filters (types include any an operator added)."""
    return {
        "types": sorted(EventLog.objects.values_list("event_type", flat=True).distinct()),
        "sources": sorted(EventLog.objects.values_list("source", flat=True).distinct()),
    }
