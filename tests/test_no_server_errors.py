"""No input reaches a 5xx: unknown paths and out-of-range ids are 4xx with a JSON reason (in
process, real databases); the dashboard's JSON under generated queries (hypothesis); WebSocket
paths that do not exist are refused in the handshake (a running system); an event whose numbers a
database cannot hold is not an event, and its dead letter cannot be replayed (a 409, not a 500)."""
import asyncio
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from sagaboard.kernel.events import BIGINT_MAX, Event, InvalidEvent

TOO_BIG = str(BIGINT_MAX + 1)


@pytest.fixture
def client(client):
    client.defaults["HTTP_HOST"] = "127.0.0.1"
    return client


def json_4xx(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = json.loads(response.content)
    assert isinstance(body, dict) and body, body
    return body


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("path, status", [
    (f"/dashboard/board.json?ids={TOO_BIG}", 400),
    ("/dashboard/board.json?ids=1,abc", 400),
    ("/dashboard/board.json?ids=0", 400),
    (f"/dashboard/board.json?order={TOO_BIG}", 400),
    ("/dashboard/board.json?order=-3", 400),
    ("/dashboard/board.json?order=%201", 400),  # ids are never trimmed, here as on /events
    ("/dashboard/board.json?ids=%201", 400),
    ("/dashboard/board.json?page=abc", 400),
    (f"/dashboard/sagas/{TOO_BIG}.json", 404),
    ("/dashboard/sagas/7.json", 404),
    ("/orders//1", 404),
    ("/no/such/path", 404),
    ("/points/", 200),
    (f"/sagas/{TOO_BIG}/", 404),
])
def test_bad_paths_and_ids_are_4xx_with_a_json_reason(client, path, status):
    response = client.get(path)
    if status == 200:
        assert response.status_code == 200
        return
    json_4xx(response, status)


@pytest.mark.django_db(databases="__all__")
def test_an_unknown_path_is_a_page_for_a_browser_and_json_for_anyone_else(client):
    page = client.get("/orders//1", HTTP_ACCEPT="text/html")
    assert page.status_code == 404 and b"no such path: /orders//1" in page.content
    assert json_4xx(client.get("/orders//1"), 404) == {"detail": "no such path: /orders//1"}


@pytest.mark.django_db(databases="__all__")
def test_unknown_services_and_scenarios_are_json_404s(client):
    assert "no service" in json_4xx(client.post("/dashboard/services/nope/stop"), 404)["detail"]
    assert "no scenario" in json_4xx(client.post("/dashboard/scenarios/nope"), 404)["detail"]


# bodies of every odd kind, to every endpoint that takes one: each a 4xx with a JSON reason
WRITES = ["/orders", "/points", "/corrections/adjust", "/corrections/reject", "/corrections/replay"]
ODD_BODIES = {
    "truncated": b'{"holderId": "jjy"',
    "invalid UTF-8": b'{"holderId": "\xff\xfe"}',
    "a UTF-8 BOM": b'\xef\xbb\xbf{"holderId": "jjy", "currencyId": "1", "amount": 5}',
    "nested 100,000 deep (array)": b"[" * 100_000 + b"]" * 100_000,
    "nested 50,000 deep (object)": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "an integer of 5,000 digits": b'{"holderId": "jjy", "currencyId": "1", "amount": 1' + b"0" * 5000 + b"}",
    "1e999": b'{"holderId": "jjy", "currencyId": "1", "amount": 1e999, "point": 1e999, "userId": "jjy", "reason": "x"}',
    "NaN": b'{"userId": "jjy", "holderId": "jjy", "point": NaN, "amount": NaN, "currencyId": "1", "reason": "x"}',
    "-1e400 points": b'{"holderId": "jjy", "point": -1e400, "reason": "x"}',
    "NUL in every string": b'{"holderId": "a\\u0000b", "userId": "a\\u0000b", "reason": "a\\u0000b", "currencyId": "\\u0000", '
                           b'"amount": 5, "point": 5, "orderId": 1, "service": "\\u0000", "deadLetterId": 1}',
    "a lone surrogate": b'{"holderId": "\\ud800", "userId": "\\ud800", "reason": "\\ud800", "currencyId": "1", "amount": 5, "point": 5, '
                        b'"policy": "\\ud800", "service": "\\udfff", "orderId": 1, "deadLetterId": 1}',  # echoed in a field error
    "control characters": b'{"holderId": "jjy\\u0007", "userId": "\\u001b[31m", "reason": "bell\\u0007", "point": 5, "orderId": 1}',
    "an orderId past bigint": b'{"orderId": 9223372036854775808, "reason": "x", "holderId": "jjy", "point": 1}',
    "an array": b"[]", "null": b"null", "a number": b"5", "a string": b'"x"', "empty": b"",
    "3 MB (past DATA_UPLOAD_MAX_MEMORY_SIZE)": b'{"holderId": "' + b"a" * 3_000_000 + b'"}',
}


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("name", ODD_BODIES)
def test_odd_bodies_are_4xx_with_a_json_reason_and_store_nothing(client, name):
    from sagaboard.kernel.models import OutboxMessage
    from services.order.models import Order
    from services.point.models import Account
    from services.point.services import grant_points

    grant_points(holder_id="jjy", point=100)
    for path in WRITES:
        response = client.generic("POST", path, ODD_BODIES[name], content_type="application/json")
        assert 400 <= response.status_code < 500, (path, response.status_code, response.content[:200])
        json_4xx(response, response.status_code)
        if name.startswith("3 MB"):
            assert response.status_code == 413
    assert not Order.objects.exists() and Account.objects.count() == 1
    assert sum(OutboxMessage.objects.using(service).count() for service in ("order", "point")) == 1  # the grant


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("value", ["\x00", "a\x00b", "\x1b[31m", "9" * 30, "x" * 10_000, "😀", " 1", "%"])
def test_query_values_no_database_can_hold_are_4xx(client, value):
    """A NUL reaches no database (PostgreSQL refuses it in text: a 500 before the holder filter
    took the holder id's rule); every filter of every list answers 200 or a 4xx in JSON."""
    for path, names in (("/events", ["type", "source", "orderId", "limit"]), ("/outcomes", ["orderId"]),
                        ("/consistency", ["orderId"]), ("/dashboard/board.json", ["holder", "status", "page", "ids", "order"]),
                        ("/dashboard/consistency.json", ["orderId"])):
        for name in names:
            response = client.get(path, {name: value})
            assert response.status_code == 200 or 400 <= response.status_code < 500, (path, name, response.status_code)
            json.loads(response.content)


@pytest.mark.django_db(databases="__all__")
def test_errors_outside_the_apis_views_are_json_too(client):
    """Found by a hostile try: Django's own HTML pages (a CSRF failure, a foreign Host, an empty
    405), a 500 for OPTIONS on the docs page, and the schema's ?version= in a header."""
    assert "CSRF" not in json_4xx(client.post("/dashboard/board.json"), 405)["detail"]  # a read-only view: a 405, not a CSRF 403
    assert client.put("/dashboard/sagas/1.json")["Allow"] == "GET"
    json_4xx(client.post("/no/such/path"), 404)
    json_4xx(client.post("/events/", {}, content_type="application/json"), 405)
    json_4xx(client.get("/orders", HTTP_HOST="evil.example"), 400)
    assert client.options("/api/docs/").status_code == 405
    for version in ("\r\nSet-Cookie: a=b", "é", "\x00", '"; x=', "0.1.0"):
        response = client.get("/api/schema/", {"version": version, "format": "json"})
        assert response.status_code == 200, (version, response.status_code)
        assert response["Content-Disposition"] in ('inline; filename="Sagaboard API.json"', 'inline; filename="Sagaboard API (0.1.0).json"')


@pytest.mark.django_db(databases="__all__")
def test_a_csrf_failure_is_a_json_403():
    from django.test import Client

    strict = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    response = strict.post("/dashboard/scenarios/happy-path")
    assert "CSRF" in json_4xx(response, 403)["detail"]


@pytest.mark.django_db(databases="__all__")
def test_the_admin_answers_ids_no_database_holds_without_a_500(client):
    """A hostile try: an admin filter or an action's selected row past bigint (or not a number)
    was a 500; Django's answer to an incorrect lookup is a redirect to ?e=1."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw"))
    for path in ("/admin/order/statuschange/?order__exact=99999999999999999999", "/admin/order/statuschange/?order=99999999999999999999",
                 "/admin/order/statuschange/?order_id__exact=-99999999999999999999", "/admin/point/account/?q=%00"):
        assert client.get(path).status_code in (200, 302), path
    for selected in ("9223372036854775808", "abc", "1\x00"):
        response = client.post("/admin/order/order/", {"action": "reject_and_compensate", "_selected_action": selected,
                                                       "apply": "1", "reason": "x"})
        assert response.status_code in (200, 302), (selected, response.status_code)
    response = client.post("/admin/kernel/deadletter/?service=exchange", {"action": "replay", "_selected_action": "99999999999999999999",
                                                                          "apply": "1", "reason": "x"})
    assert response.status_code in (200, 302)


QUERY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@pytest.mark.django_db(databases="__all__")
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["ids", "page", "order", "status", "holder", "format"]),
                              st.one_of(QUERY_TEXT, st.integers(-2**70, 2**70).map(str)), max_size=5))
def test_the_boards_json_never_fails_whatever_the_query(client, params):
    response = client.get("/dashboard/board.json", params)
    assert response.status_code in (200, 400), (params, response.status_code, response.content[:300])
    json.loads(response.content)


def envelope(**changes) -> dict:
    data = {"eventId": str(uuid.uuid4()), "eventType": "DeadlineReached", "orderId": 5, "timestamp": 1, "deadline": 2,
            "causationId": None, "source": "deadline", "policy": "safe", "payload": {}}
    return {**data, **changes}


@pytest.mark.parametrize("changes", [
    {"orderId": BIGINT_MAX + 1}, {"orderId": 0}, {"orderId": -1}, {"timestamp": -1}, {"deadline": BIGINT_MAX + 1},
])
def test_the_event_contract_bounds_every_number_to_what_the_databases_hold(changes):
    with pytest.raises(InvalidEvent, match="out of range"):
        Event.from_dict(envelope(**changes))
    assert Event.from_dict(envelope(orderId=BIGINT_MAX)).orderId == BIGINT_MAX


@pytest.mark.system
def test_the_worst_bodies_hang_no_web_worker(system):
    """The real web server (Daphne, SAGA_WEB_PROCESSES × SAGA_WEB_THREADS workers): every odd body
    to every write endpoint, eight at a time, then the API still answers at once and nothing was
    stored."""
    from concurrent.futures import ThreadPoolExecutor

    before = len(system.get("/orders"))

    def send(job):
        path, body = job
        return system.http.post(path, content=body, headers={"Content-Type": "application/json"}, timeout=60)

    jobs = [(path, body) for body in ODD_BODIES.values() for path in WRITES]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, jobs))
    assert all(400 <= a.status_code < 500 and a.json() for a in answers), [(a.status_code, a.text[:100]) for a in answers if a.status_code >= 500]
    for _ in range(16):  # as many requests as there are workers, and then some
        assert system.http.get("/orders", timeout=5).status_code == 200
    assert len(system.get("/orders")) == before


@pytest.mark.system
def test_websocket_paths_that_do_not_exist_are_refused_in_the_handshake(system):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    origin = f"http://127.0.0.1:{system.port}"

    async def handshake(path: str):
        try:
            async with connect(f"ws://127.0.0.1:{system.port}{path}", origin=origin, proxy=None, open_timeout=20) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 20))["kind"]
        except InvalidStatus as exc:
            return exc.response.status_code

    for path in ("/ws/sagas/abc/", "/ws/sagas/1", "/ws/nope/", f"/ws/sagas/{TOO_BIG}/", "/ws/sagas/0/"):
        assert asyncio.run(handshake(path)) == 403, path
    assert asyncio.run(handshake("/ws/sagas/")) == "hello"
    assert asyncio.run(handshake("/ws/sagas/1/")) == "hello"


@pytest.mark.system
def test_what_a_client_sends_on_a_socket_is_ignored(system):
    """Junk text and binary frames on /ws/sagas/ (a hostile try: they closed it with 1011 and left
    its status pushes running): the socket stays open and the pushes go on."""
    from websockets.asyncio.client import connect

    async def junk_then_listen():
        async with connect(f"ws://127.0.0.1:{system.port}/ws/sagas/", origin=f"http://127.0.0.1:{system.port}",
                           proxy=None, open_timeout=20) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 20))["kind"] == "hello"
            for frame in ("not json", b"\x00\xff binary", "{}", "x" * 100_000):
                await ws.send(frame)
            kinds = {json.loads(await asyncio.wait_for(ws.recv(), 10))["kind"] for _ in range(3)}  # pushes every second
            return kinds

    assert asyncio.run(junk_then_listen())


@pytest.mark.system
def test_an_event_out_of_range_is_dead_lettered_and_cannot_be_replayed(system):
    from tests.system import wait_until
    from tests.test_poison import produce

    value = json.dumps(envelope(orderId=BIGINT_MAX + 1)).encode()
    asyncio.run(produce(f"127.0.0.1:{system.broker_port}", "choreography.deadline", [value]))

    def letters():
        found = [dl for dl in system.get("/dead-letters") if "orderId: out of range" in dl["error"]]
        return found if len(found) == 5 else None

    found = wait_until(letters, 20, 0.2, "every consumer to dead-letter the event")
    [points] = [dl for dl in found if dl["service"] == "point"]
    response = system.http.post("/corrections/replay", json={"service": "point", "deadLetterId": points["id"], "reason": "try"})
    assert response.status_code == 409 and "not an event that can be replayed" in response.json()["detail"], response.text
