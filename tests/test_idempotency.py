"""Idempotency keys (sagaboard/idempotency.py, issue 11 §5): a client's retry of POST /orders,
POST /points or a correction with the same Idempotency-Key gets the first answer and changes
nothing; the same key with another body is a 422; only successful answers are kept, for
SAGA_IDEMPOTENCY_HOURS. In-process against the real databases; concurrent retries are in
tests/test_concurrency.py, against the real processes."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sagaboard.kernel.models import IdempotencyKey, OutboxMessage
from services.order.models import Order
from services.point.models import Grant
from services.point.services import grant_points

ORDER = {"holderId": "jjy", "currencyId": "1", "amount": 500}


@pytest.fixture
def api():
    grant_points(holder_id="jjy", point=10000)
    return APIClient()


def post(api, path, body, key):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db(databases="__all__")
def test_a_retry_of_an_order_gets_the_first_answer_and_orders_nothing_new(api):
    first = post(api, "/orders", ORDER, "order-1")
    again = post(api, "/orders", dict(reversed(list(ORDER.items()))), "order-1")  # the same body, keys in another order
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.count() == 1
    assert OutboxMessage.objects.using("order").filter(event_type="OrderCreated").count() == 1
    assert post(api, "/orders", ORDER, "order-2").json()["id"] != first.json()["id"]  # a new key is a new order
    assert api.post("/orders", ORDER, format="json").status_code == 201  # no key: every POST is new
    assert Order.objects.count() == 3


@pytest.mark.django_db(databases="__all__")
def test_a_retry_on_the_other_spelling_of_the_path_is_the_same_request(api):
    first = post(api, "/orders", ORDER, "slash")
    again = post(api, "/orders/", ORDER, "slash")
    assert again.status_code == 201 and again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


@pytest.mark.django_db(databases="__all__")
def test_the_same_key_with_another_body_is_refused(api):
    first = post(api, "/orders", ORDER, "k")
    other = post(api, "/orders", {**ORDER, "amount": 501}, "k")
    assert other.status_code == 422 and "another request" in other.json()["detail"]
    assert Order.objects.count() == 1 and Order.objects.get().amount == 500
    # a key is per path: the same key on /points is another request altogether
    assert post(api, "/points", {"userId": "k", "point": 5}, "k").status_code == 201
    assert post(api, "/orders", ORDER, "k").json() == first.json()


@pytest.mark.django_db(databases="__all__")
def test_a_refused_request_is_not_kept_and_its_retry_is_judged_again(api):
    bad = post(api, "/orders", {**ORDER, "amount": -1}, "fix-and-retry")
    assert bad.status_code == 400 and not IdempotencyKey.objects.using("order").exists()
    assert post(api, "/orders", ORDER, "fix-and-retry").status_code == 201
    assert Order.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve", "tab\tkey"])
@pytest.mark.django_db(databases="__all__")
def test_a_malformed_key_is_a_400(api, key):
    response = post(api, "/orders", ORDER, key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()
    assert Order.objects.count() == 0


@pytest.mark.django_db(databases="__all__")
def test_a_grant_retried_grants_once(api):
    first = post(api, "/points", {"userId": "jjy", "point": 100}, "grant-1")
    again = post(api, "/points", {"userId": "jjy", "point": 100}, "grant-1")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert Grant.objects.count() == 2  # the fixture's and this one
    assert IdempotencyKey.objects.using("point").count() == 1 and not IdempotencyKey.objects.using("order").exists()


@pytest.mark.django_db(databases="__all__")
def test_corrections_retried_apply_once(api):
    adjust = {"holderId": "jjy", "point": 5, "reason": "goodwill"}
    first = post(api, "/corrections/adjust", adjust, "adjust-1")
    again = post(api, "/corrections/adjust", adjust, "adjust-1")
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert OutboxMessage.objects.using("point").filter(event_type="PointsAdjusted").count() == 1

    order = post(api, "/orders", ORDER, "to-reject").json()
    reject = {"orderId": order["id"], "reason": "customer called"}
    first = post(api, "/corrections/reject", reject, "reject-1")
    again = post(api, "/corrections/reject", reject, "reject-1")
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert OutboxMessage.objects.using("order").filter(event_type="OrderRejected").count() == 1
    assert IdempotencyKey.objects.using("order").filter(key="reject-1").exists()


@pytest.mark.django_db(databases="__all__")
def test_keys_expire(api, settings):
    first = post(api, "/orders", ORDER, "old")
    IdempotencyKey.objects.using("order").update(created_at=timezone.now() - timedelta(hours=settings.SAGA_IDEMPOTENCY_HOURS, minutes=1))
    again = post(api, "/orders", ORDER, "old")
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"] and "Idempotent-Replayed" not in again
    assert Order.objects.count() == 2 and IdempotencyKey.objects.using("order").count() == 1


@pytest.mark.django_db(databases="__all__")
def test_a_replay_retried_replays_once_and_names_the_event_it_redelivered(api):
    from sagaboard.kernel.events import Event
    from sagaboard.kernel.models import DeadLetter

    event = Event(eventType="PointsGranted", orderId=None, source="point", payload={"holderId": "jjy", "point": "1.00"})
    letter = DeadLetter.objects.using("exchange").create(topic="t", partition=0, offset=7, key=b"k", value=event.to_bytes(),
                                                         headers=[], error="handler failed")
    body = {"service": "exchange", "deadLetterId": letter.id, "reason": "fixed"}
    first = post(api, "/corrections/replay", body, "replay-1")
    again = post(api, "/corrections/replay", body, "replay-1")
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert first.json()["eventId"] == event.eventId and first.json()["eventType"] == "PointsGranted"  # the pair, as re-delivered
    assert OutboxMessage.objects.using("exchange").filter(event_type="DeadLetterReplayed").count() == 1
    assert post(api, "/corrections/replay", body, "replay-2").status_code == 409  # a new request: already replayed
