from django.urls import path

from .consumers import SagaConsumer

websocket_urlpatterns = [
    path("ws/sagas/", SagaConsumer.as_asgi()),
    path("ws/sagas/<int:order_id>/", SagaConsumer.as_asgi()),
]
