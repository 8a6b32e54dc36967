import os
from pathlib import Path

import pytest

from tests.system import System


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """This run's own test databases, so two runs on one machine never meet (two clones, or CI
    beside a session's own run): pytest-django's hook, run just before it creates them.
    PostgreSQL: `test_<NAME>_<pid>` instead of Django's fixed `test_<NAME>` (two runs against one
    server dropped and recreated each other's). SQLite: the files go to this run's pytest temporary
    directory instead of the checkout's SAGA_DATA_DIR (var/)."""
    from django.conf import settings

    databases = tmp_path_factory.mktemp("databases")
    for alias, db in settings.DATABASES.items():
        test = db.setdefault("TEST", {})
        if db["ENGINE"].endswith("sqlite3"):
            test["NAME"] = str(databases / Path(test.get("NAME") or f"test_{alias}.sqlite3").name)
        else:
            test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_{os.getpid()}"


@pytest.fixture(scope="module")
def system(tmp_path_factory, request):
    """The whole system for one test module; a module may set SYSTEM_ENV / SYSTEM_REPLICAS, and
    SYSTEM_EXTERNAL_BROKER = True (the session `broker`, passed as an external Kafka) /
    SYSTEM_DATABASE_URL (the PostgreSQL server to use whatever DATABASE_URL says) /
    SYSTEM_START_TIMEOUT (seconds to wait for every process to be ready, default 90)."""
    env = getattr(request.module, "SYSTEM_ENV", {})
    replicas = getattr(request.module, "SYSTEM_REPLICAS", 1)
    external = request.getfixturevalue("broker") if getattr(request.module, "SYSTEM_EXTERNAL_BROKER", False) else None
    sb = System(tmp_path_factory.mktemp("system"), replicas=replicas, broker=external,
                database_url=getattr(request.module, "SYSTEM_DATABASE_URL", None), **env)
    try:
        sb.start(getattr(request.module, "SYSTEM_START_TIMEOUT", 90))
    except BaseException:
        print(sb.tail())
        sb.stop()
        raise
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def broker():
    """The embedded broker alone, on a free port, for kernel tests; yields its address."""
    import subprocess

    from sagaboard.kernel.broker import tansu_command
    from tests.system import free_port, listening, wait_until

    port = free_port()
    from django.conf import settings

    # with this test process's cluster id, so its kernel tests may use it as their embedded broker
    proc = subprocess.Popen(tansu_command(port, settings.SAGA_CLUSTER_ID), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    wait_until(lambda: listening(port), 10, 0.05, "the broker to listen")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(autouse=True)
def _forget_known_holders():
    """The web's cache of holders with an account (services/point/selectors.py) outlives a test's
    database; a test starts without it."""
    from services.point.selectors import known_holders

    known_holders.seen.clear()
