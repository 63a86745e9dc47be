import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.claude import ClaudeDir
from tests.support.server import HelmServer
from tests.support.sse import SSEClient

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(params=["c", "python"])
def triage(request, monkeypatch):
    """A reader test run twice: with the C triage of lines (helm_monitor/sources/claude/_lines.c)
    and with the reader's own Python doing the same (as where the C part is not built)."""
    from helm_monitor.sources.claude import transcript
    if request.param == "python":
        monkeypatch.setattr(transcript, "_triage", None)
    elif transcript._triage is None:
        pytest.fail("the C triage of lines is not built (pip install -e . needs a C compiler)")
    return request.param


@pytest.fixture
def claude(tmp_path) -> ClaudeDir:
    """An empty Claude data directory with projects/ and sessions/."""
    return ClaudeDir(tmp_path / "claude")


@pytest.fixture
def sample_dir(tmp_path):
    """Copy a real sample data directory (made by the real CLI) into tmp_path."""
    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(FIXTURES / name, dest)
        for p in dest.rglob("*"):
            p.chmod(0o700 if p.is_dir() else 0o600)
        return dest
    return copy


@pytest.fixture
def server_factory(tmp_path, request):
    """Start real servers (gunicorn + gevent worker); all are stopped at teardown."""
    servers: list[HelmServer] = []

    def start(claude_dir, wait: bool = True, **kw) -> HelmServer:
        srv = HelmServer(Path(claude_dir), log_path=tmp_path / f"server-{len(servers)}.log", **kw)
        servers.append(srv)
        return srv.start(wait=wait)

    yield start
    # What a test checks of a stop, it checks with its own srv.stop() (graceful, SIGTERM); the
    # servers still running now are killed, which saves each about a second.
    for srv in servers:
        srv.kill()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for srv in servers:
            print(f"--- server log ({srv.url}) ---\n{srv.log()}")


@pytest.fixture
def server(claude, server_factory) -> HelmServer:
    """A running helm-monitor on a free port, watching the ``claude`` directory."""
    return server_factory(claude.root)


@pytest.fixture(autouse=True)
def _exclusive(request):
    """``@pytest.mark.exclusive(name)``: a lock file per name under the temporary directory, held
    (flock) for the whole test, so that tests sharing something machine-wide (another uid's inotify
    limits) never run at once: not on two pytest-xdist workers, not in two runs on one machine."""
    names = sorted({mark.args[0] for mark in request.node.iter_markers("exclusive")})
    held = []
    try:
        for name in names:
            f = open(os.path.join(tempfile.gettempdir(), f"helm-monitor-tests-{name}.lock"), "a")
            held.append(f)
            fcntl.flock(f, fcntl.LOCK_EX)  # pytest-timeout bounds the wait
        yield
    finally:
        for f in held:
            f.close()


@pytest.fixture(autouse=True)
def _close_stream_clients():
    yield
    while SSEClient.opened:
        SSEClient.opened.pop().close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (scripts/test.sh): the tests marked slow go first, so that they start at
    once on every worker instead of lengthening the run's tail. The rest keep their order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
