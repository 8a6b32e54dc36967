import pytest

from tests.system import System


@pytest.fixture(scope="module")
def system(tmp_path_factory, request):
    """The whole system for one test module; a module may set SYSTEM_ENV / SYSTEM_REPLICAS."""
    env = getattr(request.module, "SYSTEM_ENV", {})
    replicas = getattr(request.module, "SYSTEM_REPLICAS", 1)
    sb = System(tmp_path_factory.mktemp("system"), replicas=replicas, **env)
    try:
        sb.start()
    except BaseException:
        print(sb.tail())
        sb.stop()
        raise
    yield sb
    sb.stop()
