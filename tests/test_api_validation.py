"""Bad input gets a 400 with field errors and stores and emits nothing (in-process, real databases)."""
import json

import pytest
from rest_framework.test import APIClient

from sagaboard.kernel.models import OutboxMessage
from services.order.models import Order
from services.point.models import Account, Grant
from services.point.services import grant_points

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def api():
    grant_points(holder_id="jjy", point=10000)
    return APIClient()


def nothing_stored():
    return (
        Order.objects.count() == 0
        and OutboxMessage.objects.using("order").count() == 0
        and OutboxMessage.objects.using("point").count() == 1  # only the grant of the fixture
        and Grant.objects.count() == 1
    )


GOOD_ORDER = {"holderId": "jjy", "currencyId": "1", "amount": 500}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"amount": -5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 10**15}, "amount"),
        ({"amount": "1e309"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": [500]}, "amount"),
        ({"holderId": ""}, "holderId"),
        ({"holderId": "nobody"}, "holderId"),
        ({"holderId": "x" * 100}, "holderId"),
        ({"holderId": "jjy; DROP TABLE"}, "holderId"),
        ({"holderId": {"id": "jjy"}}, "holderId"),
        ({"currencyId": ""}, "currencyId"),
        ({"currencyId": "c" * 40}, "currencyId"),
        ({"policy": "reckless"}, "policy"),
    ],
)
def test_bad_order_fields(api, change, field):
    response = api.post("/orders", {**GOOD_ORDER, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert nothing_stored()


@pytest.mark.parametrize("missing", ["holderId", "currencyId", "amount"])
def test_missing_order_field(api, missing):
    body = {k: v for k, v in GOOD_ORDER.items() if k != missing}
    response = api.post("/orders/", body, format="json")
    assert response.status_code == 400
    assert response.json()[missing] == ["This field is required."]
    assert nothing_stored()


def test_unknown_holder_says_what_to_do(api):
    response = api.post("/orders", {**GOOD_ORDER, "holderId": "ghost"}, format="json")
    assert response.json() == {"holderId": ["unknown holder 'ghost': grant points first (POST /points)"]}


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"holderId": "jjy", "currencyId": "1", "amount": ', "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("null", "application/json"),
        ("holderId=jjy&currencyId=1&amount=500", "text/plain"),
        ("<order/>", "application/xml"),
    ],
)
def test_malformed_body_or_wrong_content_type(api, body, content_type):
    response = api.generic("POST", "/orders", body, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response.json(), "a 400 says what is wrong"
    assert nothing_stored()


def test_good_order_is_stored_with_its_event(api):
    response = api.post("/orders", GOOD_ORDER, format="json")
    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["policy"], order["amount"]) == ("PENDING", "safe", 500)
    [message] = OutboxMessage.objects.using("order").all()
    event = json.loads(bytes(message.body))
    assert (event["eventType"], event["orderId"], event["deadline"], event["policy"]) == ("OrderCreated", order["id"], order["deadline"], "safe")
    assert event["payload"] == {"holderId": "jjy", "currencyId": "1", "amount": 500}


def test_httpie_style_strings_are_accepted(api):
    # `http :8088/orders holderId=jjy currencyId=1 amount=500` sends every value as a string
    response = api.post("/orders", {"holderId": "jjy", "currencyId": "1", "amount": "500"}, format="json")
    assert response.status_code == 201 and response.json()["amount"] == 500


@pytest.mark.parametrize(
    "body, field",
    [
        ({"userId": "jjy", "point": -1}, "point"),
        ({"userId": "jjy", "point": 0}, "point"),
        ({"userId": "jjy", "point": "lots"}, "point"),
        ({"userId": "jjy", "point": 10**15}, "point"),
        ({"userId": "", "point": 10}, "userId"),
        ({"point": 10}, "userId"),
        ({"userId": "jjy"}, "point"),
    ],
)
def test_bad_grants(api, body, field):
    response = api.post("/points", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Account.objects.get(holder_id="jjy").point == 10000
    assert nothing_stored()


@pytest.mark.parametrize(
    "path, status",
    [
        ("/orders/999", 404),
        ("/points/ghost", 404),
        ("/events?orderId=abc", 400),
        ("/events?limit=0", 400),
        ("/consistency?orderId=-1", 400),
        ("/outcomes", 400),
    ],
)
def test_bad_reads(api, path, status):
    response = api.get(path)
    assert response.status_code == status
    assert response.json()


def test_paths_work_with_and_without_trailing_slash(api):
    for path in ("/points", "/points/", "/points/jjy", "/points/jjy/", "/orders", "/orders/", "/exchanges/", "/deadlines/", "/transactions/"):
        assert api.get(path).status_code == 200, path
    assert api.post("/orders/", GOOD_ORDER, format="json").status_code == 201


@pytest.mark.parametrize("path", ["/points", "/outcomes?orderId=1", "/orders/999"])
def test_an_unknown_format_is_bad_input_that_names_the_formats(api, path):
    # DRF would answer 404 (found by the fuzz: /outcomes/?format=9954699112773526.0)
    response = api.get(path, {"format": "9954699112773526.0"})
    assert response.status_code == 400, response.content
    assert response.json() == {"format": ["unknown format '9954699112773526.0': one of api, json"]}
    assert api.get("/points", {"format": "json"}).json() == [{"userId": "jjy", "point": "10000.00"}]
    assert api.get("/points", {"format": "api"})["content-type"].startswith("text/html")
