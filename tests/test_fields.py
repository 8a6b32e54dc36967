"""One definition of each input field (sagaboard/kernel/fields.py, issue 11 §3): every endpoint,
the admin's forms and the event contract take and refuse the same values, ids are never trimmed
(on write or on read), a reason is trimmed everywhere, adjustments apply to existing holders only,
and one that takes more than the balance is refused up front; the point service's own refusal is
an event (PointsAdjustmentFailed) and an outcome with the reason. In-process, real databases."""
from decimal import Decimal

import pytest
from aiokafka.structs import ConsumerRecord
from rest_framework.test import APIClient

from sagaboard.kernel import fields
from sagaboard.kernel.admin import ReasonForm
from sagaboard.kernel.batch import Delivery, apply_batch
from sagaboard.kernel.events import Event, InvalidEvent
from sagaboard.kernel.models import InboxRecord, OutboxMessage
from services.order.models import Order
from services.point.admin import AdjustForm
from services.point.models import Account, Adjustment
from services.point.saga import service as point_service
from services.point.services import grant_points

pytestmark = pytest.mark.django_db(databases="__all__")

# ids with a space (ASCII, non-breaking, ideographic), a newline, a slash, an emoji; too long; not strings
BAD_IDS = ["😀 x/y", " ws1", "ws1 ", "ws1\u00a0", "ws1\u3000", "ws1\n", "w s", "a/b", "", "x" * 65, 5, None, ["ws1"],
           ".", "..", "-x", "_x"]  # an id starts with a letter or digit ("." and ".." are paths, not ids)
GOOD_IDS = ["ws1", "a.b@c-d_e", "x" * 64]


@pytest.fixture
def api():
    grant_points(holder_id="ws1", point=100)
    return APIClient()


def nothing_new():
    return (Account.objects.count() == 1 and not Order.objects.exists()
            and not OutboxMessage.objects.using("point").exclude(event_type="PointsGranted").exists())


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_every_endpoint_and_the_event_contract_refuse_the_same_holder_ids(api, bad):
    writes = [("/points", {"userId": bad, "point": 5}, "userId"),
              ("/orders", {"holderId": bad, "currencyId": "1", "amount": 5}, "holderId"),
              ("/corrections/adjust", {"holderId": bad, "point": 5, "reason": "qa"}, "holderId")]
    for path, body, field in writes:
        response = api.post(path, body, format="json")
        assert response.status_code == 400 and field in response.json(), (path, response.content)
        message = response.json()[field][0]
        assert fields.HOLDER_ID.rule in message or "required" in message or "null" in message, response.json()
    assert nothing_new()
    for event_type, payload in (("PointsGranted", {"holderId": bad, "point": "5.00"}),
                                ("OrderCreated", {"holderId": bad, "currencyId": "1", "amount": 5})):
        with pytest.raises(InvalidEvent, match="payload.holderId"):
            Event.from_dict(Event(eventType=event_type, orderId=1, source="t", payload=payload).as_dict())


@pytest.mark.parametrize("good", GOOD_IDS)
def test_every_endpoint_takes_the_same_holder_ids(api, good):
    assert api.post("/points", {"userId": good, "point": 5}, format="json").status_code == 201
    assert api.post("/orders", {"holderId": good, "currencyId": "1", "amount": 5}, format="json").status_code == 201
    assert api.post("/corrections/adjust", {"holderId": good, "point": 5, "reason": "qa"}, format="json").status_code == 202
    assert api.get(f"/points/{good}").json()["userId"] == good
    Event.from_dict(Event(eventType="PointsGranted", orderId=None, source="t", payload={"holderId": good, "point": "5.00"}).as_dict())


def test_ids_are_never_trimmed_on_read_either(api):
    assert api.post("/points", {"userId": "ws1 ", "point": 5}, format="json").status_code == 400
    assert api.get("/points/ws1%20").status_code == 404
    assert api.get("/points/ws1").json() == {"userId": "ws1", "point": "100.00"}
    assert list(Account.objects.values_list("holder_id", flat=True)) == ["ws1"]


@pytest.mark.parametrize("bad", [" 1", "1 ", "1\n", "", "c" * 33, "a/b", 1])
def test_currency_ids_one_rule(api, bad):
    response = api.post("/orders", {"holderId": "ws1", "currencyId": bad, "amount": 5}, format="json")
    assert response.status_code == 400 and "currencyId" in response.json()
    with pytest.raises(InvalidEvent, match="payload.currencyId"):
        Event.from_dict(Event(eventType="OrderCreated", orderId=1, source="t",
                              payload={"holderId": "ws1", "currencyId": bad, "amount": 5}).as_dict())


@pytest.mark.parametrize("bad, why", [("", "required"), ("   ", "required"), ("\u3000\u2028", "required"), ("x" * 201, "at most 200"),
                                      ("tab\there", "control"), ("bell\x07", "control"), (7, "in words"),
                                      ("\u200b", "invisible"), ("a\u2028b", "invisible"), ("\u202egoodwill", "invisible"),
                                      ("\ufeffa", "invisible"), ("a\U000E0001", "invisible"), ("a\ufffe", "invisible"),
                                      ("\u200d", "required"), ("\u3164", "required"), ("\u2800", "required"),
                                      ("\u0301\u0301", "required"), ("\ufe0f", "required")])
def test_a_reason_has_one_rule_in_the_api_and_the_admin(api, bad, why):
    response = api.post("/corrections/adjust", {"holderId": "ws1", "point": 5, "reason": bad}, format="json")
    assert response.status_code == 400 and why in response.json()["reason"][0], response.json()
    if isinstance(bad, str):
        form = ReasonForm({"reason": bad})
        assert not form.is_valid()
    assert nothing_new()


def test_an_emoji_sequence_is_a_reason(api):
    response = api.post("/corrections/adjust", {"holderId": "ws1", "point": 5, "reason": "👨\u200d👩\u200d👧 family"}, format="json")
    assert response.status_code == 202, response.content


def test_a_missing_holder_has_one_message(api):
    assert api.get("/points/ghost").json() == {"detail": "there is no holder 'ghost'"}
    assert api.get("/points/gh%20ost").json() == {"detail": "there is no holder 'gh ost'"}


@pytest.mark.parametrize("path, body", [("/events?orderId=0", None), ("/events?orderId=1.0", None),
                                        ("/corrections/replay", {"service": "point", "deadLetterId": 1.0, "reason": "qa"}),
                                        ("/corrections/reject", {"orderId": "1.0", "reason": "qa"})])
def test_ids_have_one_rule_in_queries_and_bodies(api, path, body):
    response = api.get(path) if body is None else api.post(path, body, format="json")
    assert response.status_code == 400, response.content


def test_a_reason_is_trimmed_everywhere(api):
    response = api.post("/corrections/adjust", {"holderId": "ws1", "point": 5, "reason": "  goodwill \n"}, format="json")
    assert response.status_code == 202
    event = OutboxMessage.objects.using("point").get(event_type="PointsAdjusted")
    assert Event.from_bytes(bytes(event.body), 65536).payload["reason"] == "goodwill"
    form = ReasonForm({"reason": "  goodwill \n"})
    assert form.is_valid() and form.cleaned_data["reason"] == "goodwill"


def test_the_admin_form_takes_and_refuses_points_as_the_api_does():
    for value, ok in (("250", True), ("-0.5", True), ("0.001", False), ("0", False), ("1e-300", False), ("abc", False),
                      ("1000000000.01", False)):
        form = AdjustForm({"point": value, "reason": "qa"})
        assert form.is_valid() is ok, (value, form.errors)
    assert AdjustForm({"point": "12.5", "reason": "qa"}).is_valid()
    form = AdjustForm({"point": "12.5", "reason": "qa"})
    form.is_valid()
    assert form.cleaned_data["point"] == Decimal("12.50")
    for order_id, ok in (("12", True), ("", True), ("0", False), (str(2**63), False), ("1.5", False), (" 12", False)):
        form = AdjustForm({"point": "5", "reason": "qa", "order_id": order_id})
        assert form.is_valid() is ok, (order_id, form.errors)  # the API's order id: one past bigint no longer reaches a database


def test_an_adjustment_applies_to_an_existing_holder_only(api):
    response = api.post("/corrections/adjust", {"holderId": "nobody", "point": 5, "reason": "qa"}, format="json")
    assert response.status_code == 409 and "no account" in response.json()["detail"]
    assert nothing_new()


def test_an_adjustment_names_an_order_of_its_own_holder_only(api):
    grant_points(holder_id="other", point=100)
    api.post("/orders", {"holderId": "other", "currencyId": "1", "amount": 5}, format="json")
    order_id = Order.objects.get().id
    response = api.post("/corrections/adjust", {"holderId": "ws1", "point": 5, "reason": "qa", "orderId": order_id}, format="json")
    assert response.status_code == 409 and "holder 'other'" in response.json()["detail"], response.content
    assert api.post("/corrections/adjust", {"holderId": "other", "point": 5, "reason": "qa", "orderId": order_id},
                    format="json").status_code == 202


def test_an_adjustment_that_takes_more_than_the_balance_is_refused_up_front(api):
    response = api.post("/corrections/adjust", {"holderId": "ws1", "point": "-100.01", "reason": "qa"}, format="json")
    assert response.status_code == 409 and "has 100.00 points; cannot take 100.01" in response.json()["detail"]
    assert nothing_new()
    assert api.post("/corrections/adjust", {"holderId": "ws1", "point": "-100.00", "reason": "qa"}, format="json").status_code == 202


def deliver(event: Event) -> Delivery:
    record = ConsumerRecord("t", 0, 0, 0, 0, b"k", event.to_bytes(), None, 0, 0, [("type", event.eventType.encode())])
    return Delivery("tp", record, event=event, handler=point_service.handlers[event.eventType])


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_the_point_services_refusal_is_an_event_and_an_outcome(api):
    """The web saw 100 points, but a spend came between: the point service refuses the take in
    the open (PointsAdjustmentFailed with the reason, on the order's timeline), changes nothing."""
    api.post("/orders", {"holderId": "ws1", "currencyId": "1", "amount": 5}, format="json")
    order_id = Order.objects.get().id
    api.post("/corrections/adjust", {"holderId": "ws1", "point": "-100", "reason": "qa", "orderId": order_id}, format="json")
    adjusted = Event.from_bytes(bytes(OutboxMessage.objects.using("point").get(event_type="PointsAdjusted").body), 65536)
    Account.objects.filter(holder_id="ws1").update(point=Decimal("40.00"))  # a spend meanwhile
    apply_batch(point_service, [deliver(adjusted)])
    refusal = OutboxMessage.objects.using("point").get(event_type="PointsAdjustmentFailed")
    event = Event.from_bytes(bytes(refusal.body), 65536)
    assert event.orderId == order_id and event.causationId == adjusted.eventId
    assert event.payload == {"holderId": "ws1", "point": "-100.00",
                             "reason": "holder 'ws1' has 40.00 points; the adjustment of -100.00 does not apply"}
    outcome = InboxRecord.objects.using("point").get(event_id=adjusted.eventId)
    assert outcome.outcome == InboxRecord.IGNORED and "40.00 points" in outcome.reason
    assert Account.objects.get(holder_id="ws1").point == Decimal("40.00") and not Adjustment.objects.exists()
