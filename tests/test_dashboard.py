"""The dashboard's server side on the running system: the WebSocket feed carries each event's
envelope unchanged with its partition and offset, the pages and their JSON answer, `/events/`
still answers HTTPie and curl, the service panel reports lag of a stopped service, and the
endpoints that operate need may_operate (test_dashboard_access.py)."""
import json
import time

import pytest
from websockets.sync.client import connect

from tests.system import wait_until

pytestmark = pytest.mark.system


def socket(system, path):
    return connect(f"ws://127.0.0.1:{system.port}{path}", origin=f"http://127.0.0.1:{system.port}", proxy=None, open_timeout=10)


def receive_until(ws, predicate, timeout=20):
    """Messages until one satisfies predicate; returns every message read (bounded in time)."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            message = json.loads(ws.recv(timeout=max(0.05, end - time.monotonic())))
        except TimeoutError:
            break
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"no matching message within {timeout}s; got {[m.get('kind') for m in seen]}")


def test_order_socket_carries_the_envelope_unchanged_with_partition_and_offset(system):
    """A currencyId 200 order (deadline, then chained compensation) is slow enough to open its own
    socket while it runs: that socket gets the rest of its events, the all-events socket all."""
    system.grant("ws", 1000)
    last = "PointUseCompensated"
    with socket(system, "/ws/sagas/") as everything:
        assert json.loads(everything.recv(timeout=15)) == {"kind": "hello", "group": "sagas"}
        order_id = system.order("ws", 100, currency="200")["id"]
        with socket(system, f"/ws/sagas/{order_id}/") as one:
            assert json.loads(one.recv(timeout=15)) == {"kind": "hello", "group": f"saga-{order_id}"}
            received = receive_until(one, lambda m: m["kind"] == "event" and m["event"]["eventType"] == last)
        all_received = receive_until(everything, lambda m: m["kind"] == "event" and m["event"]["eventType"] == last
                                     and m["event"]["orderId"] == order_id)
    system.settled(order_id)
    log = system.get("/events", orderId=order_id)
    by_id = {e["eventId"]: e for e in log}
    mine = [m for m in all_received if m["kind"] == "event" and m["event"]["orderId"] == order_id]
    assert [m["event"]["eventId"] for m in mine] == [e["eventId"] for e in log]  # every event, in order
    events = [m for m in received if m["kind"] == "event"]
    assert [m["event"]["eventId"] for m in events] == [e["eventId"] for e in log][-len(events):]  # the rest of them
    for m in mine + events:
        logged = by_id[m["event"]["eventId"]]
        envelope = {k: logged[k] for k in ("eventId", "eventType", "orderId", "timestamp", "deadline", "causationId", "source", "policy", "payload")}
        assert m["event"] == envelope  # the envelope of DESIGN.md section 3, unchanged
        assert (m["topic"], m["partition"], m["offset"]) == (logged["topic"], logged["partition"], logged["offset"])
        assert m["publishedAt"] <= m["receivedAt"]


def test_all_socket_pushes_the_service_panel_and_anomalies(system):
    with socket(system, "/ws/sagas/") as ws:
        panel = receive_until(ws, lambda m: m["kind"] == "services")[-1]["services"]
        verdict = receive_until(ws, lambda m: m["kind"] == "consistency")[-1]
    assert [s["name"] for s in panel] == ["order", "exchange", "point", "deadline", "monitor"]
    assert all(s["state"] == "running" for s in panel)
    assert "armed" in panel[3] and isinstance(panel[3]["armed"], int)
    assert verdict["count"] == len(verdict["anomalies"])


def test_pages_and_their_json(system):
    system.grant("pages", 1000)
    order = system.settled(system.order("pages", 10)["id"])
    for path in ("/", f"/sagas/{order['id']}/"):
        page = system.http.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
    assert system.http.get("/sagas/999999/").status_code == 404
    board = system.get("/dashboard/board.json", holder="pages")
    assert board["count"] == 1
    row = board["orders"][0]
    assert (row["id"], row["status"], row["step"], row["badges"], row["anomalies"]) == (order["id"], "APPROVED", "OrderPlaced", [], [])
    assert system.get("/dashboard/board.json", status="APPROVED", order=str(order["id"]))["count"] == 1
    assert system.get("/dashboard/board.json", status="REJECTED", holder="pages")["count"] == 0
    detail = system.get(f"/dashboard/sagas/{order['id']}.json")
    assert [e["eventType"] for e in detail["events"]] == ["OrderCreated", "ExchangeSucceeded", "PointUsed", "OrderPlaced"]
    assert detail["deadline"]["status"] == "disarmed"
    assert {o["outcome"] for o in detail["outcomes"]} == {"applied"}


def test_events_page_for_browsers_and_the_api_for_everyone_else(system):
    html = system.http.get("/events/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert html.status_code == 200 and "<table id=\"events\">" in html.text
    for path in ("/events", "/events/"):
        api = system.http.get(path, params={"limit": 5}, headers={"Accept": "application/json, */*"})
        assert api.status_code == 200 and isinstance(api.json(), list), path
    assert system.http.get("/events/", headers={"Accept": "*/*"}).headers["content-type"].startswith("application/json")


def test_stopped_service_shows_lag_then_catches_up(system):
    system.grant("lag", 1000)
    system.stop_service("point")
    try:
        order = system.order("lag", 10)
        system.wait_status(order["id"], "REJECTED DUE TO DEADLINE", timeout=15)

        def panel(name):
            return next(s for s in system.get("/dashboard/services.json")["services"] if s["name"] == name)

        stopped = wait_until(lambda: (p := panel("point"))["state"] == "stopped" and p["lag"] > 0 and p, 15, 0.2, "lag of the stopped point service")
        assert stopped["lagSource"] == "committed offsets"
    finally:
        system.start_service("point")
    wait_until(lambda: panel("point")["lag"] == 0, 20, 0.2, "the point service to catch up")
    system.settled(order["id"])


def publish(system, event) -> tuple[int, int]:
    """Publish one event straight to the system's broker (waiting up to 30 s for it); its (partition, offset)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from sagaboard.kernel.broker import start_with_retry

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{system.broker_port}", acks="all")
        await asyncio.wait_for(start_with_retry(producer, "test producer", asyncio.Event()), 30)  # the broker may be restarting
        try:
            meta = await asyncio.wait_for(producer.send_and_wait("choreography.deadline", event.to_bytes(), key=event.key), 30)
            return meta.partition, meta.offset
        finally:
            await producer.stop()

    return asyncio.run(send())


def test_the_feed_sends_each_event_once_after_a_batch(system):
    """Events published in one batch and then nothing: the embedded broker reports the
    partition's end short of the feed's position, which the feed took for a restart and read the
    partition again every few seconds (a hostile try: 6 copies of each event in 10 s)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from sagaboard.kernel.events import Event

    events = [Event(eventType="PointsGranted", orderId=None, source="test", payload={"holderId": "batch", "point": "1.00"})
              for _ in range(4)]

    async def send_one_batch():
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{system.broker_port}", acks="all", linger_ms=200)
        await producer.start()
        try:
            sent = [await producer.send("choreography.deadline", e.to_bytes(), key=b"batch", partition=0) for e in events]
            await asyncio.wait_for(asyncio.gather(*sent), 30)
        finally:
            await producer.stop()

    with socket(system, "/ws/sagas/") as ws:
        assert json.loads(ws.recv(timeout=15))["kind"] == "hello"
        asyncio.run(send_one_batch())
        mine = {e.eventId for e in events}
        copies = []
        end = time.monotonic() + 8  # several of the feed's checks (every 0.5 s) with nothing new
        while time.monotonic() < end:
            try:
                message = json.loads(ws.recv(timeout=max(0.05, end - time.monotonic())))
            except TimeoutError:
                break
            if message["kind"] == "event" and message["event"]["eventId"] in mine:
                copies.append(message["event"]["eventId"])
    assert sorted(copies) == sorted(mine), f"{len(copies)} messages for {len(mine)} events"


def test_a_restarted_web_process_feeds_from_the_end_of_the_topic(system):
    """After `supervisorctl restart web:*`, a socket gets what is published from then on, not the
    topic's history: the feed's seek to the end came before aiokafka's first positions (the
    beginning), which overrode it, so every start of a web process pushed every event ever
    published to every socket."""
    from sagaboard.kernel.events import Event

    before = Event(eventType="PointsGranted", orderId=None, source="test", payload={"holderId": "history", "point": 0})
    publish(system, before)
    assert "web" in system.supervisorctl("restart", "web:*")
    wait_until(system.ready, 60, 0.25, "the web to answer again")
    with socket(system, "/ws/sagas/") as ws:
        assert json.loads(ws.recv(timeout=15))["kind"] == "hello"
        after = Event(eventType="PointsGranted", orderId=None, source="test", payload={"holderId": "history", "point": 0})
        publish(system, after)
        received = receive_until(ws, lambda m: m["kind"] == "event" and m["event"]["eventId"] == after.eventId, timeout=30)
    replayed = [m["event"]["eventType"] for m in received if m["kind"] == "event" and m["event"]["eventId"] != after.eventId]
    assert before.eventId not in {m["event"]["eventId"] for m in received if m["kind"] == "event"}, (
        f"the socket got the history: {len(replayed)} events before the new one")


def test_feed_goes_on_after_a_broker_restart(system):
    """The embedded broker loses the topic when it restarts (offsets start again from 0); the feed
    reads the new log from its start, so an open socket gets what is published afterwards. The
    events are published straight to the broker: how fast the sagas recover is the kernel's
    business (test_broker_restart.py)."""
    from sagaboard.kernel.events import Event

    with socket(system, "/ws/sagas/") as ws:
        assert json.loads(ws.recv(timeout=15))["kind"] == "hello"
        before = Event(eventType="PointsGranted", orderId=None, source="test", payload={"holderId": "feed", "point": 0})
        publish(system, before)
        receive_until(ws, lambda m: m["kind"] == "event" and m["event"]["eventId"] == before.eventId)
        system.restart_broker()
        wait_until(system.ready, 60, 0.25, "every service to own its partitions again")
        after = Event(eventType="PointsGranted", orderId=None, source="test", payload={"holderId": "feed", "point": 0})
        where = publish(system, after)
        received = receive_until(ws, lambda m: m["kind"] == "event" and m["event"]["eventId"] == after.eventId, timeout=30)
    assert (received[-1]["partition"], received[-1]["offset"]) == where
