"""The dashboard's pages and the small JSON endpoints behind them. Reading follows
sagaboard.access.may_read; stopping/starting services and launching scenarios need may_operate.
Granting points and placing orders go through the existing JSON API (/points, /orders)."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from sagaboard import supervision
from sagaboard.access import may_operate, may_read
from sagaboard.api import allow
from sagaboard.kernel import fields
from sagaboard.schema import order_id
from services.monitor.api import EventsView

from . import scenarios, snapshot
from .feed import feed


def readable(view):
    def wrapped(request, *args, **kwargs):
        if not may_read(request.user):
            raise PermissionDenied("log in to read the dashboard")
        return view(request, *args, **kwargs)

    return wrapped


def operator(view):
    def wrapped(request, *args, **kwargs):
        if not may_operate(request.user):
            return JsonResponse({"detail": "only an operator (staff user) may do this"}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


# --- pages -----------------------------------------------------------------------------------------
@allow("GET")
@readable
def board_page(request):
    context = {
        "scenarios": [{"name": name, "title": title, "what": what} for name, (title, what, _) in scenarios.SCENARIOS.items()],
        "holder": scenarios.HOLDER,
        "can_operate": may_operate(request.user),
    }
    return render(request, "dashboard/board.html", context)


@allow("GET")
@readable
def saga_page(request, order_id):
    return render(request, "dashboard/saga.html", {"order_id": order_id, "detail": _saga(order_id)})


@allow("GET")
@readable
def compare_page(request, order_id, other_id):
    """Two orders' sagas one above the other on one time axis (ms from each order's creation),
    zoomed together: the seed's currencyId 200 bug (naive) and its fix (safe) read side by side."""
    return render(request, "dashboard/compare.html", {"a": _saga(order_id), "b": _saga(other_id)})


def _saga(order_id):
    detail = snapshot.saga(order_id)
    if detail is None:
        raise Http404(f"no order {order_id}")
    return detail


_events_api = EventsView.as_view()


@csrf_exempt  # the API's view checks a session's CSRF token itself (DRF), as on /events
def events_page(request):
    """`/events/`: the explorer for a browser (it asks for text/html); the JSON API for anyone
    else, so `/events/` keeps answering HTTPie and curl like `/events`."""
    if request.method != "GET" or "text/html" not in request.headers.get("Accept", ""):
        return _events_api(request)
    return _explorer(request)


@readable
def _explorer(request):
    return render(request, "dashboard/events.html", {"filters": snapshot.event_filters()})


# --- JSON behind the pages -----------------------------------------------------------------------------
@allow("GET")
@readable
def board_json(request):
    q = request.GET
    try:
        # order ids by their one rule: never trimmed (as on /events, /outcomes, /consistency)
        ids = [order_id(i, name="ids") for i in q["ids"].split(",") if i] if "ids" in q else None
        order = order_id(q["order"], name="order") if q.get("order", "") else ""
        page = order_id(q["page"], name="page") if q.get("page", "") else 1
    except ValidationError as exc:
        return JsonResponse(exc.detail, status=400)
    status, holder = q.get("status", ""), q.get("holder", "")
    if status and status not in (*snapshot.STATUSES, "REJECTED"):
        return JsonResponse({"status": [f"one of {', '.join(snapshot.STATUSES)}, or REJECTED for every rejection"]}, status=400)
    if holder:
        try:
            fields.HOLDER_ID.clean(holder)  # the one rule of a holder id: never trimmed (a NUL never reaches a database)
        except fields.FieldInvalid as exc:
            return JsonResponse({"holder": [str(exc)]}, status=400)
    return JsonResponse(snapshot.board(page=page, status=status, holder=holder, order_id=order, ids=ids))


@allow("GET")
@readable
def saga_json(request, order_id):
    detail = snapshot.saga(order_id)
    if detail is None:
        return JsonResponse({"detail": f"no order {order_id}"}, status=404)
    return JsonResponse(detail)


async def services_json(request):
    """The service panel (also pushed over /ws/sagas/ every SAGA_DASHBOARD_STATUS_SECONDS)."""
    if not may_read(await request.auser()):
        raise PermissionDenied("log in to read the dashboard")
    feed.ensure_started()
    lag = await feed.current_lag()
    return JsonResponse({"services": await sync_to_async(snapshot.services, thread_sensitive=False)(lag)})


@allow("GET")
@readable
def consistency_json(request):
    return JsonResponse(snapshot.consistency())


@allow("POST")
@operator
def service_control(request, name, action):
    if name not in supervision.PROGRAMS:
        return JsonResponse({"detail": f"no service {name}"}, status=404)
    (supervision.stop if action == "stop" else supervision.start)(name)
    return JsonResponse({"name": name, "action": action, "services": snapshot.services()})


@allow("POST")
@operator
def launch_scenario(request, name):
    if name not in scenarios.SCENARIOS:
        return JsonResponse({"detail": f"no scenario {name}"}, status=404)
    orders = scenarios.launch(name)
    return JsonResponse({"scenario": name, "orders": [{"id": o.id, "policy": o.policy, "currencyId": o.currency_id} for o in orders]},
                        status=201)
