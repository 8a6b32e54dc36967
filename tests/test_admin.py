"""Django admin on the running system, driven like a person would: log in as staff, pick rows,
run a correction, give a reason. Each correction must go through the saga (events on the topic,
the normal compensation chain), record the operator and reason on the order's timeline, and leave
the consistency checker with nothing to report. A non-staff user gets nowhere."""
from __future__ import annotations

import html
import logging
import re
import secrets
import subprocess
import sys

import httpx
import pytest

from tests.system import ROOT, wait_until

pytestmark = pytest.mark.system
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the failure report

# a deadline long enough for a person (the test) to act on a pending order; the seeded delay
# outlasts it, so currencyId 200 under the naive policy still ends in the seed's wrong state
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "15", "SAGA_FAULT_DELAY_SECONDS": "16"}


def create_user(system, username: str, *, staff: bool) -> str:
    """A user made the way the README says (no default password anywhere): returns its password."""
    password = secrets.token_urlsafe(16)
    make = "create_superuser" if staff else "create_user"
    system.manage("shell", "-c", f"from django.contrib.auth.models import User; User.objects.{make}({username!r}, password={password!r})")
    return password


class AdminBrowser:
    """A logged-in admin session over HTTP, with Django's CSRF protection honoured."""

    def __init__(self, system):
        self.http = httpx.Client(base_url=system.http.base_url, timeout=20)

    def csrf(self) -> str:
        return self.http.cookies["csrftoken"]

    def login(self, username: str, password: str) -> httpx.Response:
        self.http.get("/admin/login/").raise_for_status()
        return self.http.post("/admin/login/?next=/admin/", data={
            "username": username, "password": password, "next": "/admin/", "csrfmiddlewaretoken": self.csrf()})

    def action(self, changelist: str, action: str, ids, **form) -> list[str]:
        """Select rows, run `action`, fill in its form and apply it; returns the admin's messages."""
        selection = {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"}
        page = self.http.post(changelist, data={**selection, "csrfmiddlewaretoken": self.csrf()})
        assert page.status_code == 200 and "Apply the correction" in page.text, (page.status_code, page.text[:2000])
        done = self.http.post(changelist, data={**selection, **form, "apply": "1", "csrfmiddlewaretoken": self.csrf()})
        if done.status_code == 200:  # the form came back: its errors say why
            found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', done.text, re.S)
        else:
            assert done.status_code == 302, (done.status_code, done.text[:2000])
            listing = self.http.get(done.headers["location"]).text
            found = re.findall(r'<li class="(?:success|error|warning|info)">(.*?)</li>', listing, re.S)
        return [html.unescape(re.sub(r"<[^>]+>", "", m)).strip().lower() for m in found]  # admin capitalises messages


@pytest.fixture(scope="module")
def staff(system):
    browser = AdminBrowser(system)
    password = create_user(system, "operator1", staff=True)
    assert browser.login("operator1", password).status_code == 302
    yield browser
    browser.http.close()


def next_order_id(system) -> int:
    return max((o["id"] for o in system.get("/orders")), default=0) + 1


def corrections_of(system, order_id: int, event_type: str) -> list[dict]:
    return [e for e in system.get("/events", orderId=order_id) if e["eventType"] == event_type and "operator" in e["payload"]]


def test_every_model_has_a_read_only_page_with_search_and_a_link_to_the_saga(system, staff):
    system.grant("ada", 1000)
    order = system.order("ada", 100)
    system.settled(order["id"])
    index = staff.http.get("/admin/")
    assert index.status_code == 200
    pages = sorted(set(re.findall(r'href="(/admin/[a-z]+/[a-z]+/)"', index.text)))
    expected = {
        "/admin/order/order/", "/admin/order/statuschange/", "/admin/exchange/exchange/", "/admin/exchange/tombstone/",
        "/admin/point/account/", "/admin/point/grant/", "/admin/point/spend/", "/admin/point/adjustment/",
        "/admin/point/tombstone/", "/admin/deadline/deadline/", "/admin/monitor/eventlog/", "/admin/kernel/outboxmessage/",
        "/admin/kernel/inboxrecord/", "/admin/kernel/deadletter/", "/admin/kernel/processheartbeat/", "/admin/kernel/lease/",
    }
    assert expected <= set(pages), expected - set(pages)
    for page in pages:
        for query in ({}, {"q": str(order["id"])}, {"q": "ada"}, {"q": "not-a-number"}):
            response = staff.http.get(page, params=query)
            assert response.status_code == 200, (page, query, response.status_code)
    for service in ("order", "exchange", "point", "deadline", "monitor"):
        page = staff.http.get("/admin/kernel/inboxrecord/", params={"service": service, "q": str(order["id"])})
        assert page.status_code == 200 and f"of the {service} service" in page.text
    # each service's inbox page lists what that service handled for the order, from its own database
    inbox = staff.http.get("/admin/kernel/inboxrecord/", params={"service": "point", "q": str(order["id"])}).text
    assert "ExchangeSucceeded" in inbox and "OrderCreated" not in inbox
    found = staff.http.get("/admin/order/order/", params={"q": str(order["id"])}).text
    assert f'href="/sagas/{order["id"]}/"' in found
    assert "ada" in staff.http.get("/admin/order/order/", params={"q": "ada"}).text
    change = staff.http.get(f"/admin/order/order/{order['id']}/change/")
    assert change.status_code == 200 and "APPROVED" in change.text and 'name="_save"' not in change.text  # read-only
    assert staff.http.get("/admin/order/order/add/").status_code == 403
    events = staff.http.get("/admin/monitor/eventlog/", params={"q": str(order["id"])}).text
    assert events.count(f'href="/sagas/{order["id"]}/"') == 4  # OrderCreated, ExchangeSucceeded, PointUsed, OrderPlaced


def test_reject_and_compensate_a_pending_order(system, staff):
    system.grant("bea", 1000)
    system.stop_service("exchange")  # the order stays PENDING: nothing has happened yet
    try:
        order = system.order("bea", 300)
        messages = staff.action("/admin/order/order/", "reject_and_compensate", [order["id"]],
                                reason="customer called to cancel")
        assert any("rejected by operator1" in m for m in messages), messages
        assert system.get(f"/orders/{order['id']}")["status"] == "REJECTED BY OPERATOR"
    finally:
        system.start_service("exchange")
    settled = system.settled(order["id"])
    assert settled["status"] == "REJECTED BY OPERATOR"
    assert "customer called to cancel" in settled["reason"] and "operator1" in settled["reason"]
    [rejection] = corrections_of(system, order["id"], "OrderRejected")
    assert rejection["payload"]["operator"] == "operator1"
    assert rejection["payload"]["reason"] == "customer called to cancel"
    assert "PointUseCompensated" in system.event_types(order["id"])
    assert system.balance("bea") == 1000
    assert not system.get("/exchanges") or order["id"] not in [e["orderId"] for e in system.get("/exchanges")]
    system.wait_consistent()
    # once rejected by an operator, there is nothing left to correct
    again = staff.action("/admin/order/order/", "reject_and_compensate", [order["id"]], reason="twice")
    assert any("already rejected by an operator" in m for m in again), again
    assert len(corrections_of(system, order["id"], "OrderRejected")) == 1


def test_reject_and_compensate_repairs_the_seeds_wrong_end_state(system, staff):
    system.grant("cy", 1000)
    order = system.order("cy", 500, currency="200", policy="naive")
    wait_until(lambda: system.get("/consistency", orderId=order["id"])["count"] == 2, 40, 0.2, "the seed's wrong end state")
    assert system.balance("cy") == 500
    # a consistent order is left alone
    fine = system.order("cy", 100)
    system.settled(fine["id"])
    wait_until(lambda: system.get("/consistency", orderId=fine["id"])["count"] == 0, 10, 0.2, "the settled order to be judged")
    messages = staff.action("/admin/order/order/", "reject_and_compensate", [order["id"], fine["id"]],
                            reason="approved after its deadline (seed's race)")
    assert any(f"order {order['id']} rejected by operator1" in m for m in messages), messages
    assert any("consistent" in m and "nothing to correct" in m for m in messages), messages
    repaired = wait_until(lambda: (o := system.get(f"/orders/{order['id']}"))["status"] == "REJECTED BY OPERATOR" and
                          "PointUseCompensated" in system.event_types(order["id"]) and o, 20, 0.1, "the compensation chain")
    assert [h["toStatus"] for h in repaired["history"]][-1] == "REJECTED BY OPERATOR"
    assert system.get(f"/orders/{fine['id']}")["status"] == "APPROVED"
    assert system.balance("cy") == 900  # the 500 refunded once; the approved 100 stays spent
    system.wait_consistent(15)


def test_adjust_balance_with_a_reason(system, staff):
    system.grant("dan", 1000)
    order = system.order("dan", 200)
    system.settled(order["id"])
    assert staff.action("/admin/point/account/", "adjust_balance", ["dan"], point="250", reason="") == \
        ["this field is required."]
    messages = staff.action("/admin/point/account/", "adjust_balance", ["dan"], point="250", order_id=str(order["id"]),
                            reason="goodwill for a slow order")
    assert any("pointsadjusted +250.00 for dan" in m for m in messages), messages
    wait_until(lambda: system.balance("dan") == 1050, 10, 0.1, "the point service to apply the adjustment")
    [adjusted] = corrections_of(system, order["id"], "PointsAdjusted")  # on the order's timeline
    assert adjusted["payload"] == {"holderId": "dan", "point": "250.00", "operator": "operator1", "reason": "goodwill for a slow order"}
    system.wait_outcome(order["id"], "point", "PointsAdjusted", "applied")
    refused = staff.action("/admin/point/account/", "adjust_balance", ["dan"], point="-5000", reason="too much")
    assert any("cannot take 5000" in m for m in refused), refused
    taken = staff.action("/admin/point/account/", "adjust_balance", ["dan"], point="-50", reason="double goodwill by mistake")
    assert any("pointsadjusted -50.00 for dan" in m for m in taken), taken
    wait_until(lambda: system.balance("dan") == 1000, 10, 0.1, "the negative adjustment")
    listing = staff.http.get("/admin/point/adjustment/", params={"q": "dan"}).text
    assert "goodwill for a slow order" in listing and "double goodwill by mistake" in listing and "operator1" in listing
    system.wait_consistent()  # the balance rule counts the adjustments


STRAY_EXCHANGE = """
import time
from sagaboard.kernel.models import DeadLetter
from services.exchange.models import Exchange
Exchange.objects.create(order_id={oid}, holder_id="stray", currency_id="1", amount=1, point=1)
print("planted", flush=True)
end = time.monotonic() + 45
def dead_lettered():
    values = DeadLetter.objects.using("exchange").exclude(value=None).values_list("value", flat=True)
    return any(b'"orderId":{oid},' in bytes(value) for value in values)
while not dead_lettered():
    assert time.monotonic() < end, "no dead letter"
    time.sleep(0.05)
Exchange.objects.filter(order_id={oid}, holder_id="stray").delete()
print("removed", flush=True)
"""


def test_replay_a_dead_lettered_event(system, staff):
    system.grant("eve", 1000)
    oid = next_order_id(system)
    # a stray exchange row for the next order makes the exchange's handler fail on its OrderCreated
    # (unique order id) until the cause is removed; after three attempts it is dead-lettered. One
    # process plants the row and removes it once the dead letter is there, so the order's deadline
    # does not wait for a Django start-up in between.
    fixer = subprocess.Popen([sys.executable, "manage.py", "shell", "-v", "0", "-c", STRAY_EXCHANGE.format(oid=oid)], cwd=ROOT,
                             env=system.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert fixer.stdout.readline().strip() == "planted"
        order = system.order("eve", 400)
        assert order["id"] == oid
        assert fixer.wait(60) == 0 and fixer.stdout.read().strip() == "removed"
    finally:
        if fixer.poll() is None:
            fixer.kill()
            fixer.wait()
    [letter] = [d for d in system.get("/dead-letters") if d["service"] == "exchange" and f'"orderId":{oid}' in (d["value"] or "")]
    assert "handler failed" in letter["error"] and letter["replayedAt"] is None
    assert system.get(f"/orders/{oid}")["status"] == "PENDING"
    messages = staff.action("/admin/kernel/deadletter/?service=exchange", "replay", [letter["id"]],
                            reason="stray exchange row removed")
    assert any("ordercreated" in m and f"of order {oid} re-delivered" in m for m in messages), messages
    assert system.settled(oid)["status"] == "APPROVED", (
        [(e["eventType"], e["timestamp"] - e["deadline"] if e["deadline"] else None) for e in system.get("/events", orderId=oid)],
        [(o["service"], o["eventType"], o["outcome"], o["reason"], o["handledAt"]) for o in system.get("/outcomes", orderId=oid)])
    system.wait_outcome(oid, "exchange", "OrderCreated", "applied")
    types = system.event_types(oid)
    assert types.count("OrderCreated") == 2 and "DeadLetterReplayed" in types  # the re-delivery is on the timeline
    [replayed] = corrections_of(system, oid, "DeadLetterReplayed")
    assert replayed["payload"]["operator"] == "operator1" and replayed["payload"]["reason"] == "stray exchange row removed"
    assert system.balance("eve") == 600
    [after] = [d for d in system.get("/dead-letters") if d["id"] == letter["id"] and d["service"] == "exchange"]
    assert after["replayedBy"] == "operator1" and after["replayedAt"]
    again = staff.action("/admin/kernel/deadletter/?service=exchange", "replay", [letter["id"]], reason="again")
    assert any("already replayed by operator1" in m for m in again), again
    system.wait_consistent()


def test_a_user_who_is_not_staff_cannot_use_admin(system):
    password = create_user(system, "visitor", staff=False)
    visitor = AdminBrowser(system)
    refused = visitor.login("visitor", password)
    assert refused.status_code == 200 and "staff account" in refused.text
    for path in ("/admin/", "/admin/order/order/", "/admin/point/account/"):
        response = visitor.http.get(path)
        assert response.status_code == 302 and "/admin/login/" in response.headers["location"], path
    system.grant("fay", 1000)
    order = system.order("fay", 100)
    response = visitor.http.post("/admin/order/order/", data={
        "action": "reject_and_compensate", "_selected_action": [str(order["id"])], "apply": "1", "reason": "no",
        "csrfmiddlewaretoken": visitor.csrf()})
    assert response.status_code == 302 and "/admin/login/" in response.headers["location"]
    assert system.settled(order["id"])["status"] == "APPROVED"
    assert not corrections_of(system, order["id"], "OrderRejected")
    visitor.http.close()
