"""The web process (Daphne): Django over HTTP, the dashboard's WebSockets over Channels, and the
publisher of what its requests commit (sagaboard/webpublisher.py).

WebSockets go through AllowedHostsOriginValidator (a page of another origin may not open one) and
AuthMiddlewareStack (the session's user, which the consumers ask sagaboard.access about)."""
import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sagaboard.settings")
get_asgi_application()  # sets Django up
from asgiref.wsgi import WsgiToAsgi, WsgiToAsgiInstance  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

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


class WholeResponse(WsgiToAsgiInstance):
    """asgiref's WSGI adapter for one request, sending the response once the view has returned.

    asgiref's own sends each ASGI message from the worker thread through `AsyncToSync`: three
    round trips to the event loop for every response (its start, its body, its end). Here the
    worker thread collects them and the event loop sends them after the one hop that ran Django:
    measured in process with a trivial WSGI app (medians of five runs), 456 µs of CPU per request
    with asgiref's, 189 µs with this (README, "Efficiency"). The price is that a response is held
    whole in memory before its first byte leaves: Sagaboard streams nothing over HTTP (live updates
    go over WebSockets), and its largest responses are the vendored static files, a few hundred kB."""

    async def __call__(self, scope, receive, send):
        self.messages: list[dict] = []
        await super().__call__(scope, receive, send)
        for message in self.messages:
            await send(message)

    @property
    def sync_send(self):
        """What asgiref's run_wsgi_app calls, in the worker thread, with each message."""
        return self.messages.append

    @sync_send.setter
    def sync_send(self, async_to_sync_send):
        """asgiref sets AsyncToSync(send) here; the messages are collected instead."""


class WholeWsgiToAsgi(WsgiToAsgi):
    """WsgiToAsgi with WholeResponse for each request."""

    async def __call__(self, scope, receive, send):
        await WholeResponse(self.wsgi_application, self.duplicate_header_limit)(scope, receive, send)


django_asgi = WholeWsgiToAsgi(get_wsgi_application())
workers = Workers(settings.SAGA_WEB_THREADS)


async def http(scope, receive, send):
    """Django in the web's worker threads, with this process's outbox publisher running
    (sagaboard/webpublisher.py)."""
    web_publisher.ensure_started()
    await workers.serve(django_asgi, scope, receive, send)


application = ProtocolTypeRouter({
    "http": http,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
