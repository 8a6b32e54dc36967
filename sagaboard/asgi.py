"""The web process (Daphne): Django over HTTP, the dashboard's WebSockets over Channels, and the
publisher of what its requests commit (sagaboard/webpublisher.py).

WebSockets go through AllowedHostsOriginValidator (a page of another origin may not open one) and
AuthMiddlewareStack (the session's user, which the consumers ask sagaboard.access about)."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sagaboard.settings")
get_asgi_application()  # sets Django up
from asgiref.wsgi import WsgiToAsgi  # noqa: E402
django_asgi = WsgiToAsgi(get_wsgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from django.conf import settings  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from sagaboard.dashboard.routing import websocket_urlpatterns  # noqa: E402
from sagaboard.webpublisher import web_publisher  # noqa: E402


class Workers:
    """The threads Django's sync code (views, ORM) runs in: a few long-lived ones, each a
    single-thread executor with its own persistent database connections. Django's ASGI handler
    otherwise gives every request a thread of its own (asgiref's ThreadSensitiveContext), so every
    request started a thread and opened its database connections anew: most of a request's cost
    (README, "Efficiency"). A request goes to the worker with the fewest requests in hand."""

    def __init__(self, count: int):
        self.executors = [ThreadPoolExecutor(1, thread_name_prefix=f"web-{i}") for i in range(count)]
        self.busy = [0] * count

    async def serve(self, app, scope, receive, send):
        i = min(range(len(self.busy)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            async with ThreadSensitiveContext(executor=self.executors[i]):
                await app(scope, receive, send)
        finally:
            self.busy[i] -= 1


workers = Workers(settings.SAGA_WEB_THREADS)

if "twisted.internet.reactor" in sys.modules:  # under Daphne
    # The SAGA_WEB_PROCESSES Daphne processes accept from one listening socket (supervisord's
    # fcgi-program). Twisted accepts up to 100 connections per wake-up, so the first process woken
    # took a client's whole pool of keep-alive connections and the others idled; one at a time
    # spreads them.
    from twisted.internet import tcp

    tcp.Port.numberAccepts = 1


async def http(scope, receive, send):
    """Django in the web's worker threads, with this process's outbox publisher running
    (sagaboard/webpublisher.py)."""
    web_publisher.ensure_started()
    await workers.serve(django_asgi, scope, receive, send)


application = ProtocolTypeRouter({
    "http": http,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
