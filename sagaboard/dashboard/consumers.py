"""WebSocket endpoints: /ws/sagas/ (every event, the service panel, anomalies) and
/ws/sagas/<orderId>/ (one order's events). Messages are documented in the README ("Dashboard")."""
from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from sagaboard.access import may_read

from .feed import ALL, feed, order_group

READY_TIMEOUT_SECONDS = 10


class SagaConsumer(AsyncJsonWebsocketConsumer):
    watching = False  # counted among the watchers of /ws/sagas/ (the status pushes run for them)

    async def connect(self):
        if not may_read(self.scope.get("user")):
            await self.close(code=4403)
            return
        order_id = self.scope["url_route"]["kwargs"].get("order_id")
        self.group = order_group(order_id) if order_id is not None else ALL
        feed.ensure_started()
        await self.channel_layer.group_add(self.group, self.channel_name)
        # `hello` tells the page to read history: only once the feed cannot miss what follows
        # (bounded: with the broker down the page still connects, and events come once it is up)
        await feed.wait_ready(READY_TIMEOUT_SECONDS)
        await self.accept()
        self.watching = self.group == ALL
        if self.watching:
            feed.watchers += 1
        await self.send_json({"kind": "hello", "group": self.group})

    async def disconnect(self, code):
        if getattr(self, "group", None) is None:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.watching:
            feed.watchers -= 1
            self.watching = False

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """The socket carries the server's pushes only: whatever a client sends (junk text, binary
        frames) is ignored. Decoding it as JSON raised, which closed the socket with 1011 without
        `disconnect`, and left the status pushes running for a watcher that was gone."""

    async def saga_message(self, event):
        await self.send_json(event["message"])


class NoSuchSocket(AsyncWebsocketConsumer):
    """Every other WebSocket path (`/ws/nope/`, `/ws/sagas/abc/`, `/ws/sagas/1` without its slash):
    the handshake is refused (Daphne answers it 403), where the router's "no route" was a 500."""

    async def connect(self):
        await self.close(code=4404)
