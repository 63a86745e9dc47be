import pytest

from tests.support.redis import RedisServer
from tests.support.team import SimHost


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server of this test's own (no persistence)."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path):
    """Start more (or persistent) servers: ``redis_factory(persistent=True)``."""
    started = []

    def start(**kw) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(started)}", **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hosts(redis_server):
    """``hosts(name, url=None)``: simulated hosts writing the agent's wire format, closed at teardown."""
    made: list[SimHost] = []

    def make(name: str, url: str | None = None) -> SimHost:
        host = SimHost(url or redis_server.url, name)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()
