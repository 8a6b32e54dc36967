"""The board stays quick with 10,000 orders: one page is read with a fixed number of queries per
database, whatever the number of orders (paginated and filtered in the database), and its rows,
steps and badges are right. In-process, on the test databases."""
import uuid

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from sagaboard.dashboard import snapshot
from services.monitor.models import EventLog
from services.order.models import APPROVED, PENDING, REJECTED_DEADLINE, Order

pytestmark = pytest.mark.django_db(databases="__all__")
DATABASES = ("order", "monitor", "exchange", "point")


def make_orders(n, start=0):
    statuses = (APPROVED, REJECTED_DEADLINE, PENDING)
    orders = Order.objects.bulk_create(
        Order(holder_id=f"h{i % 7}", currency_id="1", amount=10, status=statuses[i % 3], deadline=2**40) for i in range(start, start + n)
    )
    chain = {APPROVED: ["OrderCreated", "ExchangeSucceeded", "PointUsed", "OrderPlaced"],
             REJECTED_DEADLINE: ["OrderCreated", "DeadlineReached", "OrderRejected", "ExchangeCompensated"],
             PENDING: ["OrderCreated"]}
    EventLog.objects.bulk_create(
        EventLog(event_id=uuid.uuid4(), event_type=t, order_id=o.id, source="order", policy="safe", timestamp=1000 + k,
                 payload={}, topic="t", partition=0, offset=o.id * 10 + k)
        for o in orders for k, t in enumerate(chain[o.status])
    )


def queries_for_one_page(**filters):
    contexts = {alias: CaptureQueriesContext(connections[alias]) for alias in DATABASES}
    for context in contexts.values():
        context.__enter__()
    try:
        page = snapshot.board(**filters)
    finally:
        for context in contexts.values():
            context.__exit__(None, None, None)
    return page, {alias: len(context.captured_queries) for alias, context in contexts.items()}


def test_one_page_costs_the_same_queries_for_ten_orders_and_for_ten_thousand():
    make_orders(10)
    small_page, small = queries_for_one_page(page=1)
    make_orders(9_990, start=10)
    page, large = queries_for_one_page(page=3, holder="h3", status="REJECTED")
    assert large == small, (small, large)
    assert small_page["count"] == 10 and len(small_page["orders"]) == 10
    assert page["count"] == len([i for i in range(10_000) if i % 7 == 3 and i % 3 == 1])
    assert len(page["orders"]) == snapshot.PAGE_SIZE and page["page"] == 3 and page["pages"] == -(-page["count"] // snapshot.PAGE_SIZE)
    ids = [o["id"] for o in page["orders"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    row = page["orders"][0]
    assert (row["holderId"], row["status"], row["step"]) == ("h3", REJECTED_DEADLINE, "ExchangeCompensated")
    assert row["badges"] == ["compensating"]  # safe: compensated only once PointUseCompensated arrives
    _, full = queries_for_one_page(page=1, status=APPROVED)
    approved = snapshot.board(status=APPROVED)["orders"][0]
    assert (approved["step"], approved["badges"]) == ("OrderPlaced", [])
    assert full == small
