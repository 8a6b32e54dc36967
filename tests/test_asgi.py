"""The web process's ASGI glue (sagaboard/asgi.py), in process: Django's WSGI handler runs in a
worker thread and the whole response is sent from the event loop afterwards."""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext

from sagaboard.asgi import WholeWsgiToAsgi

SCOPE = {"type": "http", "method": "GET", "path": "/x", "query_string": b"a=1", "headers": [(b"host", b"127.0.0.1")],
         "http_version": "1.1", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5)}


def serve(wsgi_app, body=b"") -> list[dict]:
    """Run one request through WholeWsgiToAsgi in a worker thread, as the web does; the messages
    sent. `wsgi_app(environ, start_response, sent)` sees what was sent so far."""
    sent, send_threads, app_threads = [], set(), set()

    def app(environ, start_response):
        app_threads.add(threading.get_ident())
        return wsgi_app(environ, start_response, sent)

    async def receive():
        return {"type": "http.request", "body": body}

    async def send(message):
        send_threads.add(threading.get_ident())
        sent.append(message)

    async def main():
        with ThreadPoolExecutor(1) as executor:
            async with ThreadSensitiveContext(executor=executor):
                await WholeWsgiToAsgi(app)(dict(SCOPE), receive, send)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert send_threads == {loop_thread}, "every message is sent from the event loop's thread"
    assert loop_thread not in app_threads, "Django ran in a worker thread"
    return sent


def test_the_whole_response_is_sent_in_order_from_the_event_loop():
    sent_while_running = []

    def app(environ, start_response, sent):
        assert environ["PATH_INFO"] == "/x" and environ["QUERY_STRING"] == "a=1"
        start_response("201 Created", [("Content-Type", "application/json"), ("X-Seen", environ["wsgi.input"].read().decode())])
        yield b'{"a":'
        sent_while_running.append(len(sent))
        yield b"1}"

    sent = serve(app, body=b"posted")
    # asgiref's own adapter had sent the start and the first chunk by then, each a hop to the loop
    assert sent_while_running == [0], "nothing is sent while Django runs: the worker does not wait on the event loop"
    assert sent == [
        {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json"), (b"x-seen", b"posted")]},
        {"type": "http.response.body", "body": b'{"a":', "more_body": True},
        {"type": "http.response.body", "body": b"1}", "more_body": True},
        {"type": "http.response.body"},
    ]


def test_an_empty_body_still_starts_and_ends_the_response():
    def app(environ, start_response, sent):
        start_response("204 No Content", [])
        return []

    sent = serve(app)
    assert sent == [{"type": "http.response.start", "status": 204, "headers": []}, {"type": "http.response.body"}]
