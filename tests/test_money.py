"""Exact money (sagaboard/kernel/fields.py, issue 11 §2): points are decimals with a smallest unit
of 0.01, strings in JSON, whole hundredths in the databases; anything finer is a 400; the
exchange's product is rounded half to even; any sequence of grants, spends, refunds and
adjustments sums exactly; old float data migrates to hundredths. In-process against the real
databases, then the issue's sequence through the running system."""
from decimal import Decimal

import pytest
from aiokafka.structs import ConsumerRecord
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from sagaboard import consistency
from sagaboard.kernel import fields
from sagaboard.kernel.batch import Delivery, apply_batch
from sagaboard.kernel.events import Event, InvalidEvent, now_ms
from sagaboard.kernel.models import OutboxMessage
from services.exchange.saga import service as exchange_service
from services.point.models import Account, Adjustment, Spend
from services.point.saga import service as point_service
from services.point.services import grant_points
from tests.system import wait_until

D = Decimal


@pytest.mark.parametrize("value, exact", [("0.3", D("0.30")), ("-0.10", D("-0.10")), (0.1, D("0.10")), (5, D("5.00")),
                                          ("12.500", D("12.50")), (D("1E+2"), D("100.00")), (1e9, D("1000000000.00"))])
def test_points_take_exact_decimals(value, exact):
    assert fields.points(value) == exact and fields.format_points(fields.points(value)) == f"{exact:f}"


@pytest.mark.parametrize("value", [1e-300, "0.001", 0.005, "1e-300", "1e3", " 1", "1 ", "+1", "1.", ".5", "NaN", "Infinity",
                                   float("nan"), float("inf"), True, None, [1], "", "0x10", 10**20, "99999999999999999999.99"])
def test_points_refuse_anything_else(value):
    with pytest.raises(fields.FieldInvalid):
        fields.points(value)


def test_the_exchange_rounds_half_to_even():
    assert fields.exchanged(1, D("0.125")) == D("0.12")
    assert fields.exchanged(1, D("0.135")) == D("0.14")
    assert fields.exchanged(3, D("1.005")) == D("3.02")
    assert fields.exchanged(500, D("1.0")) == D("500.00")
    assert fields.exchanged(10**9, D("1.23456")) == D("1234560000.00")


def record(event: Event) -> ConsumerRecord:
    return ConsumerRecord("t", 0, 0, 0, 0, b"k", event.to_bytes(), None, 0, 0, [("type", event.eventType.encode())])


def handle(service, *events: Event):
    result = apply_batch(service, [Delivery("tp", record(e), event=e, handler=service.handlers[e.eventType]) for e in events])
    assert not result.failed, result.failed


def emitted(using: str, event_type: str) -> list[Event]:
    return [Event.from_bytes(bytes(m.body), 65536) for m in OutboxMessage.objects.using(using).filter(event_type=event_type).order_by("id")]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_sums_are_exact_through_the_handlers(settings):
    """The issue's sequence: grant 1, spend 1 (balance 0), adjust +0.3, −0.1, −0.2 (balance 0.00,
    every one applied), then +0.1, +0.2 (0.30); the checker agrees, exactly."""
    settings.SAGA_EXCHANGE_RATE = D("1")
    api = APIClient()
    assert api.post("/points", {"userId": "m", "point": 1}, format="json").json() == {"userId": "m", "point": "1.00"}
    handle(point_service, Event(eventType="ExchangeSucceeded", orderId=1, source="exchange", deadline=now_ms() + 60_000,
                                payload={"holderId": "m", "currencyId": "1", "amount": 1, "point": "1.00"}))
    assert Account.objects.get().point == 0
    for step, balance in (("0.3", "0.30"), ("-0.1", "0.20"), ("-0.2", "0.00"), ("0.1", "0.10"), ("0.2", "0.30")):
        response = api.post("/corrections/adjust", {"holderId": "m", "point": step, "reason": "qa"}, format="json")
        assert response.status_code == 202, response.content
        handle(point_service, emitted("point", "PointsAdjusted")[-1])
        assert api.get("/points/m").json()["point"] == balance
    assert not OutboxMessage.objects.using("point").filter(event_type="PointsAdjustmentFailed").exists()
    assert [a.point for a in Adjustment.objects.all()] == [D(x) for x in ("0.30", "-0.10", "-0.20", "0.10", "0.20")]
    assert consistency.check_balances() == []


@pytest.mark.django_db(databases="__all__")
def test_the_api_refuses_points_finer_than_the_smallest_unit():
    grant_points(holder_id="m", point=D("5"))
    api = APIClient()
    for body, path in (({"userId": "m", "point": "0.001"}, "/points"), ({"userId": "m", "point": 1e-300}, "/points"),
                       ({"holderId": "m", "point": 1e-300, "reason": "qa"}, "/corrections/adjust"),
                       ({"holderId": "m", "point": "0.005", "reason": "qa"}, "/corrections/adjust"),
                       ({"holderId": "m", "point": 0, "reason": "qa"}, "/corrections/adjust")):
        response = api.post(path, body, format="json")
        assert response.status_code == 400 and "point" in response.json(), (body, response.content)
    assert api.post("/points", {"userId": "m", "point": 0.1}, format="json").json()["point"] == "5.10"  # a JSON number, exact
    # a JSON number is read as written, not as a float: digits a float would drop are seen, and refused
    for number in (b"1.0000000000000001", b"0.30000000000000001", b"0.009999999999999999999", b"999999999.999999999"):
        response = api.generic("POST", "/points", b'{"userId": "m", "point": ' + number + b"}", content_type="application/json")
        assert response.status_code == 400 and "point" in response.json(), (number, response.content)
    assert api.get("/points/m").json()["point"] == "5.10"


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_the_exchange_product_is_rounded_and_carried_as_a_string(settings):
    settings.SAGA_EXCHANGE_RATE = D("0.125")
    handle(exchange_service, Event(eventType="OrderCreated", orderId=7, source="order", deadline=now_ms() + 60_000,
                                   payload={"holderId": "m", "currencyId": "1", "amount": 1}))
    (succeeded,) = emitted("exchange", "ExchangeSucceeded")
    assert succeeded.payload["point"] == "0.12"
    assert APIClient().get("/exchanges").json()[0]["point"] == "0.12"


def test_the_event_contract_bounds_points():
    def event(point):
        return Event(eventType="PointUsed", orderId=1, source="point", payload={"holderId": "m", "point": point}).as_dict()

    for bad in ("0.001", 1e-300, "abc", None, True, str(fields.POINTS_MAX + 1)):
        with pytest.raises(InvalidEvent, match="payload.point"):
            Event.from_dict(event(bad))
    for good in ("9500.00", 9500.0, 9500, str(fields.POINTS_MAX)):  # a float of an older release is taken when exact
        Event.from_dict(event(good))


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_float_points_migrate_to_exact_hundredths():
    """Data written by a release with float columns keeps its value, without the binary noise."""
    connection = connections["point"]
    executor = MigrationExecutor(connection)
    before, after = [("point", "0002_operator_corrections")], [("point", "0003_points_in_hundredths")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    old.get_model("point", "Account").objects.using("point").create(holder_id="f", point=0.1 + 0.2)
    old.get_model("point", "Spend").objects.using("point").create(order_id=1, holder_id="f", point=9500.0)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    assert Account.objects.get(holder_id="f").point == D("0.30")
    assert Spend.objects.get(order_id=1).point == D("9500.00")


# --- through the running system ------------------------------------------------------------------
def test_the_issues_sequence_through_the_system(system):
    system.grant("exact", 1)
    order = system.order("exact", 1)
    system.wait_status(order["id"], "APPROVED")
    assert system.get("/points/exact")["point"] == "0.00"
    for step, balance in (("0.3", "0.30"), ("-0.1", "0.20"), ("-0.2", "0.00"), (0.1, "0.10"), (0.2, "0.30")):
        system.post("/corrections/adjust", {"holderId": "exact", "point": step, "reason": "qa", "orderId": order["id"]}, expect=202)
        wait_until(lambda balance=balance: system.get("/points/exact")["point"] == balance, 15, 0.1, f"the balance {balance}")
    assert not system.get("/events", orderId=order["id"], type="PointsAdjustmentFailed")
    assert system.post("/corrections/adjust", {"holderId": "exact", "point": 1e-300, "reason": "qa"}, expect=400)["point"]
    assert system.wait_consistent()
