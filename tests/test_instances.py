"""Two Sagaboards on one machine never meet: a second instance refuses a data directory, web port
or broker port that the first holds, takes another broker port when only the default one is taken,
and no process of one ever consumes or publishes on the other's broker (its cluster id is its
data directory's). The first instance is the module's running system."""
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.system import ROOT, System, free_port

pytestmark = pytest.mark.system
DEFAULT_BROKER_PORT = 19092


def second(tmp_path: Path, **env: str) -> dict:
    """The environment of a second instance: its own data directory, socket and ports, then `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SAGA_", "KAFKA_"))}
    data = tmp_path / "second"
    return {**base, "SAGA_DATA_DIR": str(data), "SAGA_SUPERVISOR_SOCKET": str(tmp_path / "second.sock"),
            "PORT": str(free_port()), "SAGA_BROKER_PORT": str(free_port()), "PYTHONUNBUFFERED": "1", **env}


def manage(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_broker_port_given_and_taken_is_refused(system, tmp_path):
    done = manage(second(tmp_path, SAGA_BROKER_PORT=str(system.broker_port)), "run")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"broker port {system.broker_port} (SAGA_BROKER_PORT)" in done.stderr
    assert f"SAGA_BROKER_PORT={system.broker_port + 1}" in done.stderr


def test_a_web_port_taken_is_refused(system, tmp_path):
    done = manage(second(tmp_path, PORT=str(system.port)), "run")
    assert done.returncode == 1 and f"port {system.port} on 127.0.0.1 is in use" in done.stderr, done.stderr
    assert f"PORT={system.port + 1} make run" in done.stderr


def test_the_same_data_directory_twice_is_refused(system, tmp_path):
    env = second(tmp_path, SAGA_DATA_DIR=system.env["SAGA_DATA_DIR"], SAGA_SUPERVISOR_SOCKET=system.env["SAGA_SUPERVISOR_SOCKET"])
    done = manage(env, "run")
    assert done.returncode == 1 and "Sagaboard already runs from" in done.stderr, done.stderr
    assert system.ready(), "the first one runs on"


def test_runbroker_on_a_taken_port_fails_and_says_how_to_choose_another(system, tmp_path):
    done = manage(second(tmp_path, SAGA_BROKER_PORT=str(system.broker_port)), "runbroker", timeout=60)
    assert done.returncode != 0
    assert f"port {system.broker_port} on 127.0.0.1 is in use" in done.stderr and "SAGA_BROKER_PORT" in done.stderr


def test_a_service_refuses_another_instances_broker(system, tmp_path):
    """A service of another instance (another data directory) pointed at this one's broker port —
    by hand, or a port clash — exits at once without touching it."""
    system.grant("mine", 100)
    done = manage(second(tmp_path, SAGA_BROKER_PORT=str(system.broker_port)), "runservice", "exchange", timeout=60)
    assert done.returncode == 78, (done.stdout, done.stderr)
    assert "is not this Sagaboard's" in done.stderr and f"127.0.0.1:{system.broker_port}" in done.stderr
    order = system.order("mine", 10)
    assert system.settled(order["id"])["status"] == "APPROVED"
    assert [e["source"] for e in system.get("/events", orderId=order["id"])] == ["order", "exchange", "point", "order"]


@contextmanager
def taken(port: int):
    """`port` on 127.0.0.1 busy for the block: held by a listener here if nothing holds it yet."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            pass  # something else holds it already: busy either way
        yield


def test_a_second_instance_on_the_taken_default_broker_port_runs_on_another(system, tmp_path):
    with taken(DEFAULT_BROKER_PORT):
        (tmp_path / "other").mkdir()
        other = System(tmp_path / "other")
        del other.env["SAGA_BROKER_PORT"]  # the default, 19092, which is taken
        try:
            other.start()
            log = other.log_path.read_text()
            assert f"The broker port {DEFAULT_BROKER_PORT} is in use" in log
            assert f"embedded Tansu broker at 127.0.0.1:{DEFAULT_BROKER_PORT}" not in log
            other.grant("theirs", 100)
            order = other.order("theirs", 10)
            assert other.settled(order["id"])["status"] == "APPROVED"
        finally:
            other.stop()
    assert "theirs" not in [p["userId"] for p in system.get("/points")]
    assert system.ready()
