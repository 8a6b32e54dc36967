"""Who may use the dashboard (sagaboard/access.py), in-process in production mode: anonymous
users may not stop services or launch scenarios; when reading needs a login, pages and sockets
refuse them; a page of another origin may not open a socket."""
import asyncio

from channels.testing import WebsocketCommunicator
from django.test import Client

from sagaboard.asgi import application

LOCAL = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


async def opens(headers):
    ws = WebsocketCommunicator(application, "/ws/sagas/", headers=headers)
    connected, code = await ws.connect(timeout=5)
    await ws.disconnect()
    return connected, code


def test_operating_needs_an_operator_and_reading_may_need_a_login(settings):
    """Production mode, in-process: anonymous users may not stop services or launch scenarios,
    and when reading needs a login the sockets refuse them."""
    settings.SAGA_OPEN_ACCESS = False
    client = Client()
    assert client.post("/dashboard/services/exchange/stop").status_code == 403
    assert client.post("/dashboard/scenarios/happy-path").status_code == 403
    settings.SAGA_READ_REQUIRES_LOGIN = True
    assert client.get("/").status_code == 403

    assert asyncio.run(opens(LOCAL)) == (False, 4403)


def test_a_page_of_another_origin_may_not_open_a_socket(settings):
    settings.SAGA_OPEN_ACCESS = True
    connected, _ = asyncio.run(opens([(b"origin", b"http://elsewhere.example"), (b"host", b"127.0.0.1")]))
    assert connected is False
