"""The web process (Daphne): Django over HTTP, the dashboard's WebSockets over Channels, and the
publisher of what its requests commit (sagaboard/webpublisher.py).

WebSockets go through AllowedHostsOriginValidator (a page of another origin may not open one) and
AuthMiddlewareStack (the session's user, which the consumers ask sagaboard.access about)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sagaboard.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from sagaboard.dashboard.routing import websocket_urlpatterns  # noqa: E402
from sagaboard.webpublisher import web_publisher  # noqa: E402


async def http(scope, receive, send):
    """Django, with this process's outbox publisher running (sagaboard/webpublisher.py)."""
    web_publisher.ensure_started()
    await django_asgi(scope, receive, send)


application = ProtocolTypeRouter({
    "http": http,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
