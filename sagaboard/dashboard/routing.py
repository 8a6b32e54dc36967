from django.urls import path, re_path

from sagaboard import schema  # noqa: F401  (registers the order_id path converter)

from .consumers import NoSuchSocket, SagaConsumer

websocket_urlpatterns = [
    path("ws/sagas/", SagaConsumer.as_asgi()),
    path("ws/sagas/<order_id:order_id>/", SagaConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),  # any other path: refused in the handshake, not a 500
]
