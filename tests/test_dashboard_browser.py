"""The dashboard in a real browser (Playwright driving Debian's Chromium) on the running system:
an order placed from the page changes status without a reload; the currencyId 200 scenario shows
the anomaly badge on the naive order only; the order page draws the deadline line, compensation
marks and the dropped late event; a service stopped and started from the page catches up; live
updates continue after the web server restarts. Screenshots of the board and an order page are
saved as artifacts (paths printed).

The tests run in file order on one system, as a person would click through them."""
import re
import time

import pytest

from tests.browser import browser, page_of, screenshot, wait_live
from tests.system import wait_until

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def chromium():
    with browser() as chromium:
        yield chromium


@pytest.fixture
def board(chromium, system):
    with page_of(chromium, f"http://127.0.0.1:{system.port}", "/") as page:
        page.evaluate("window.notReloaded = true")  # gone if the page reloads or navigates
        yield page
        assert page.evaluate("window.notReloaded === true"), "the board reloaded"


def row(page, order_id):
    return page.locator(f"#orders tr[data-order='{order_id}']")


def order_id_from(page, selector):
    text = page.locator(selector).inner_text(timeout=30_000)
    return [int(n) for n in re.findall(r"order (\d+)", text)]


def test_place_an_order_from_the_page_and_watch_its_status_change(board):
    board.fill("#grant-form [name=userId]", "alice")
    board.fill("#grant-form [name=point]", "2000")
    board.click("#grant-form button")
    board.wait_for_selector("#form-result.ok >> text=alice now has 2000.00 points")
    board.fill("#order-form [name=holderId]", "alice")
    board.fill("#order-form [name=amount]", "700")
    board.click("#order-form button")
    board.wait_for_selector("#form-result.ok >> text=placed")
    (order_id,) = order_id_from(board, "#form-result")
    row(board, order_id).locator(".status.approved").wait_for()
    # the step comes from the monitor's log, which may record OrderPlaced a moment after the order
    # turned APPROVED; the board reads the row again then (board.js refreshRows)
    row(board, order_id).locator(".step", has_text=re.compile("^OrderPlaced$")).wait_for(timeout=10_000)
    # a refused order shows the API's field errors
    board.fill("#order-form [name=holderId]", "nobody")
    board.click("#order-form button")
    board.wait_for_selector("#form-result.error >> text=unknown holder")


def test_a_double_click_places_one_order(board, system):
    """The order form sends one Idempotency-Key per submission (static/dashboard/board.js): two
    submits before the answer place one order; a submission after the answer is a new order."""
    def alices():
        return sorted(o["id"] for o in system.get("/orders") if o["holderId"] == "alice")

    before = alices()
    board.fill("#order-form [name=holderId]", "alice")
    board.fill("#order-form [name=amount]", "100")
    keys = []
    board.on("request", lambda r: r.url.endswith("/orders") and r.method == "POST" and keys.append(r.headers.get("idempotency-key")))
    board.evaluate("() => { const f = document.getElementById('order-form'); f.requestSubmit(); f.requestSubmit(); }")
    wait_until(lambda: len(keys) == 2, 10, 0.05, "two POSTs")
    assert keys[0] and keys[0] == keys[1], keys
    board.wait_for_selector("#form-result.ok >> text=placed")
    (order_id,) = order_id_from(board, "#form-result")
    new = wait_until(lambda: (ids := alices()) != before and ids, 10, 0.1, "the order")
    assert new == before + [order_id]
    time.sleep(1)  # the second copy has had its answer too
    assert alices() == before + [order_id]
    board.click("#order-form button")  # after the answer: a new submission, a new key
    wait_until(lambda: len(keys) == 3, 10, 0.05, "a third POST")
    assert keys[2] != keys[0]
    wait_until(lambda: len(alices()) == len(before) + 2, 10, 0.1, "a second order")


def test_currency_200_safe_and_naive_anomaly_badge_on_the_naive_one_only(board, system):
    board.click("button[data-scenario=currency-200]")
    board.wait_for_selector("#scenario-result.ok >> text=naive")
    safe_id, naive_id = order_id_from(board, "#scenario-result")
    naive, safe = row(board, naive_id), row(board, safe_id)
    naive.locator(".status.rejected").wait_for()  # the deadline first …
    naive.locator(".status.approved").wait_for()  # … then the seed's late approval
    naive.locator(".badge.anomaly").wait_for()
    safe.locator(".badge.compensated").wait_for()
    assert safe.locator(".status").inner_text() == "REJECTED DUE TO DEADLINE"
    # the naive order's anomaly and the safe order's settling are both past the grace period;
    # the checker's next push still leaves the safe one without a badge
    system.wait_outcome(safe_id, "exchange", "OrderCreated", "dropped")
    system.settled(safe_id)
    pushes = int(board.get_attribute("#orders", "data-checks"))
    board.wait_for_function(f"() => Number(document.getElementById('orders').dataset.checks) > {pushes + 1}")
    anomalies = system.get("/consistency")["anomalies"]
    assert {a["orderId"] for a in anomalies} == {naive_id}
    assert safe.locator(".badge.anomaly").count() == 0
    assert "terminal-status-changed" in naive.locator(".badge.anomaly").get_attribute("title")
    screenshot(board, "board")


def test_order_page_draws_the_deadline_line_compensations_and_the_dropped_late_event(chromium, system):
    system.grant("carol", 1000)
    order_id = system.order("carol", 100, currency="200")["id"]  # rejected by its deadline, compensated
    with page_of(chromium, f"http://127.0.0.1:{system.port}", f"/sagas/{order_id}/") as page:
        page.locator("[data-testid=deadline-line]").wait_for(state="attached")  # a vertical line has no width
        # live while the saga runs: the chained compensation arrives after the page opened
        page.locator(".mark.compensation[data-event-type=PointUseCompensated]").wait_for()
        assert page.locator(".mark.compensation[data-event-type=ExchangeCompensated]").count() == 1
        assert page.locator(".mark.transition[data-event-type=OrderRejected]").count() == 1
        page.locator(".mark.outcome[data-outcome=dropped][data-event-type=OrderCreated]").wait_for()
        assert page.locator("path.cause").count() >= 4  # arrows from each cause
        assert page.locator("#order-status").inner_text() == "REJECTED DUE TO DEADLINE"
        page.locator("#verdict [data-verdict=consistent]").wait_for()
        logged = system.get("/events", orderId=order_id)
        rows = page.locator("#events tbody tr")
        assert rows.count() == len({e["eventId"] for e in logged})  # merged, no duplicates
        first = logged[0]
        assert page.locator(f"#events tr[data-event-id='{first['eventId']}'] td").nth(3).inner_text() == str(first["partition"])
        x = float(page.get_attribute("[data-testid=deadline-line]", "x1"))
        marks = {t: float(page.locator(f".mark[data-event-type={t}] circle").first.get_attribute("cx"))
                 for t in ("OrderCreated", "DeadlineReached")}
        assert marks["OrderCreated"] < x <= marks["DeadlineReached"] + 1  # the deadline fires at its line
        screenshot(page, "saga")


def test_events_explorer_filters_and_links_to_the_order_page(chromium, system):
    system.grant("frank", 1000)
    order_id = system.settled(system.order("frank", 100)["id"])["id"]
    with page_of(chromium, f"http://127.0.0.1:{system.port}", f"/events/?orderId={order_id}") as page:
        page.locator("#events tbody tr[data-event-id]").nth(3).wait_for()
        rows = page.locator("#events tbody tr[data-event-id]")
        assert rows.count() == 4
        assert [rows.nth(i).locator("td").nth(2).inner_text() for i in range(4)] == ["OrderPlaced", "PointUsed", "ExchangeSucceeded", "OrderCreated"]
        page.select_option("#event-filters [name=type]", "OrderCreated")
        page.fill("#event-filters [name=orderId]", "")
        page.click("#event-filters button")
        page.wait_for_function("() => [...document.querySelectorAll('#events tbody tr[data-event-id] td:nth-child(3)')].every(td => td.textContent === 'OrderCreated')")
        assert page.locator("#events tbody tr[data-event-id]").count() >= 3  # every order so far
        page.click(f"#events a[href='/sagas/{order_id}/']")
        page.wait_for_url(f"**/sagas/{order_id}/")
        page.locator(".mark[data-event-type=OrderPlaced]").wait_for()


def test_stop_and_start_a_service_from_the_page_and_it_catches_up(board, system):
    exchange = board.locator("#services tr[data-service=exchange]")
    exchange.locator("button[data-action=stop]").click()
    board.locator("#services tr[data-service=exchange][data-state=stopped]").wait_for()
    system.grant("dave", 1000)
    order_id = system.order("dave", 100)["id"]
    row(board, order_id).locator(".status.rejected").wait_for()  # nobody exchanged it: the deadline rejects it
    wait_until(lambda: int(exchange.locator(".lag").inner_text()) > 0, 15, 0.2, "the stopped exchange's lag on the page")
    board.locator("#services tr[data-service=exchange] button[data-action=start]").click()
    board.locator("#services tr[data-service=exchange][data-state=running]").wait_for()
    wait_until(lambda: exchange.locator(".lag").inner_text() == "0", 20, 0.2, "the exchange to catch up")
    system.wait_outcome(order_id, "exchange", "OrderCreated", "dropped")  # it read the order it missed
    row(board, order_id).locator(".badge.compensated").wait_for()


def test_live_updates_continue_after_the_web_server_restarts(board, system):
    connections = int(board.get_attribute("#live-state", "data-connections"))
    assert "web" in system.supervisorctl("restart", "web:*")  # every web process (SAGA_WEB_PROCESSES)
    board.wait_for_function(f"() => Number(document.getElementById('live-state').dataset.connections) > {connections}", timeout=60_000)
    wait_live(board, 60_000)
    system.grant("erin", 1000)
    order_id = system.order("erin", 100)["id"]
    row(board, order_id).locator(".status.approved").wait_for()
