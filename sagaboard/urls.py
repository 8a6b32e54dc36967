from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sagaboard.api import (
    AdjustBalanceView,
    ConsistencyView,
    DeadLettersView,
    OutcomesView,
    RejectOrderView,
    ReplayDeadLetterView,
    ServicesView,
    unknown_path,
)
from services.deadline.api import DeadlinesView
from services.exchange.api import ExchangesView
from services.monitor.api import EventsView
from services.order.api import OrdersView, OrderView
from services.point.api import PointsView, PointView, TransactionsView


def api(route, view):
    """The seed's paths answer with and without a trailing slash, for GET and POST alike."""
    return re_path(rf"^{route}/?$", view.as_view())


urlpatterns = [
    # the dashboard first: its `/events/` page answers a browser and hands the JSON API any other client
    path("", include("sagaboard.dashboard.urls")),
    api("points", PointsView),
    api(r"points/(?P<userId>[\s\S]+?)", PointView),  # any id (even with a slash or a newline) gets a JSON answer
    api("orders", OrdersView),
    api(r"orders/(?P<orderId>[^/]+)", OrderView),
    api("exchanges", ExchangesView),
    api("deadlines", DeadlinesView),
    api("transactions", TransactionsView),
    api("events", EventsView),
    api("consistency", ConsistencyView),
    api("dead-letters", DeadLettersView),
    api("outcomes", OutcomesView),
    api("services", ServicesView),
    api("corrections/reject", RejectOrderView),
    api("corrections/adjust", AdjustBalanceView),
    api("corrections/replay", ReplayDeadLetterView),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # metadata_class=None: an OPTIONS is a 405 (its metadata rendered with the docs' template was a 500)
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", metadata_class=None), name="docs"),
    path("admin/", admin.site.urls),
    re_path(r"", unknown_path),  # last: anything else is a 404 that says so, never Django's HTML page
]
handler404 = "sagaboard.api.not_found"  # an Http404 in production mode: JSON too
handler400 = "sagaboard.api.bad_request"  # a request Django refuses before any view (a foreign Host): JSON too
