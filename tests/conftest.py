"""Fixtures for every test under tests/: private temporary folders, a running server, a leak guard.

Private temporary folders: every pytest process (each xdist worker) gets
its own folder and points ``TMPDIR`` (and ``tempfile.tempdir``) at it in
``pytest_configure``, before any test runs or any kernel starts; every test
then gets a fresh folder of its own inside it (``_own_tmpdir``), and every
notebook that nbval runs starts its kernel with a fresh ``TMPDIR`` too
(``tests/notebook_kernels.py``, registered by the root ``conftest.py``).  So
whatever a test, a subprocess it starts or a lesson's kernel creates with
``tempfile`` lands in a folder nobody else writes to, and a test that looks
for what it left behind looks only there, never at the machine's /tmp.
pytest's own ``tmp_path`` folders stay where pytest keeps them.

``running_server`` is the one way tests get "a server on port 0": it binds
127.0.0.1:0 (or a short Unix socket path in the test's own TMPDIR), serves with
``serve_forever(poll_interval=0.05)`` in a thread, and always shuts the
server down, joins the thread, closes the server and removes the Unix
socket file -- checking each step with a bound, so a hang is a failure, not
a stuck test run.

``_no_leaks`` is autouse: a test that leaves a thread, a child process or an
open socket behind fails, whichever helper wrote it.  Mark a test with
``@pytest.mark.allow_leaks(reason)`` only when a library it uses keeps
something alive on purpose; say why.
"""

import functools
import gc
import glob
import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

from helpers import POLL, TIMEOUT, is_unix

#: How long the leak guard waits for threads and sockets that are already finishing
#: (test_core_guard.py shortens it to check the guard itself quickly).
SETTLE = float(os.environ.get("SOCKSERV_LEAK_SETTLE", "2.0"))


def _no_hypothesis_deadlines():
    """Hypothesis fails an example slower than 200 ms by default: a timed assertion, which a
    busy machine breaks (an example of 0.07 ms took 300 ms beside another test run).  The
    tests bound their waits themselves, so no deadline, for every property test here."""
    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("sockserv", deadline=None)
    settings.load_profile("sockserv")


def pytest_configure(config):
    _no_hypothesis_deadlines()
    config.addinivalue_line(
        "markers",
        "allow_leaks(reason): skip the thread/child/socket leak guard for this test",
    )
    _make_process_tmpdir(config)


def pytest_unconfigure(config):
    path = getattr(config, "_sockserv_tmpdir", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


# -- private temporary folders ---------------------------------------------------


#: This pytest process's own temporary folder (set in pytest_configure).
PROCESS_TMPDIR = None


def _make_process_tmpdir(config):
    """Point TMPDIR at a new folder of this pytest process's own (one per xdist worker).

    The folder is made in the machine's temporary folder, not inside one that
    a parent pytest set (short paths matter: a Unix socket path has room for
    about 107 bytes).  pytest keeps its ``tmp_path`` folders where it always
    does: PYTEST_DEBUG_TEMPROOT fixes their root before TMPDIR changes.
    """
    global PROCESS_TMPDIR
    system_tmp = os.environ.get("SOCKSERV_SYSTEM_TMPDIR") or tempfile.gettempdir()
    os.environ["SOCKSERV_SYSTEM_TMPDIR"] = system_tmp
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", system_tmp)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    PROCESS_TMPDIR = config._sockserv_tmpdir = tempfile.mkdtemp(prefix=f"sockserv-{worker}-", dir=system_tmp)
    _set_tmpdir(PROCESS_TMPDIR)


def _set_tmpdir(path):
    """Make ``path`` the temporary folder of this process and of what it starts from now on."""
    os.environ["TMPDIR"] = path
    tempfile.tempdir = path


@pytest.fixture(autouse=True)
def _own_tmpdir():
    """Give each test a fresh TMPDIR of its own, removed afterwards with what is left in it."""
    path = tempfile.mkdtemp(prefix="t-", dir=PROCESS_TMPDIR)
    _set_tmpdir(path)
    try:
        yield path
    finally:
        _set_tmpdir(PROCESS_TMPDIR)
        shutil.rmtree(path, ignore_errors=True)


# -- the slowest files first -----------------------------------------------------

#: Cache key of each test file's total time in the last run (next to what ``--lf`` uses).
DURATIONS_KEY = "sockserv/seconds-per-file"
#: Seconds per test file in this run, added up from the reports (None: not recording).
_seconds_per_file = None


def pytest_collection_modifyitems(config, items):
    """Run the files that took longest last time first (a stable sort; no record, no change).

    Under ``--dist loadfile`` a file runs on one worker from start to end, so a
    long file handed out last makes the whole run wait for it; handed out first,
    the short files fill the other workers meanwhile.
    """
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    seconds = cache.get(DURATIONS_KEY, {}) if cache is not None else {}
    if seconds:
        items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], 0.0))


def pytest_sessionstart(session):
    global _seconds_per_file
    config = session.config
    # The xdist controller (or a run without workers) sees every report; workers do not record.
    if getattr(config, "cache", None) is not None and not hasattr(config, "workerinput"):
        _seconds_per_file = {}


def pytest_runtest_logreport(report):
    if _seconds_per_file is not None:
        path = report.nodeid.split("::")[0]
        _seconds_per_file[path] = _seconds_per_file.get(path, 0.0) + report.duration


def pytest_sessionfinish(session):
    if _seconds_per_file:
        known = session.config.cache.get(DURATIONS_KEY, {})
        known.update({path: round(value, 2) for path, value in _seconds_per_file.items()})
        session.config.cache.set(DURATIONS_KEY, known)


# -- the leak guard ------------------------------------------------------------


def _children():
    """Pids of this process's children (zombies included), or None where /proc can't tell."""
    files = glob.glob(f"/proc/{os.getpid()}/task/*/children")
    if not files:
        return None
    pids = set()
    for path in files:
        try:
            with open(path) as f:
                pids.update(int(pid) for pid in f.read().split())
        except OSError:
            pass  # the thread ended while we looked
    return pids


def _socket_fds():
    """``{fd: "socket:[inode]"}`` for this process, or None where /proc/self/fd is missing."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    sockets = {}
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the fd listdir itself used, or closed since
        if target.startswith("socket:"):
            sockets[int(fd)] = target
    return sockets


def _new_threads(before):
    """Threads started since ``before`` that are still alive after a bounded wait."""
    deadline = time.monotonic() + SETTLE
    for thread in threading.enumerate():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def _new_children(before):
    """Children created since ``before``; kill and reap them so one leak does not cascade."""
    after = _children()
    if after is None:
        # No /proc: fall back to asking the kernel whether any child exists at all.
        if before is not None:
            return []
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return []
        return ["a child process (running)" if pid == 0 else f"zombie {pid} (now reaped)"]
    leaked = sorted(after - before)
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if not before:
        # Nothing existed before the test, so any child the kernel still knows of is a leak.
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            leaked.append(f"unlisted child {pid}")
        except ChildProcessError:
            pass
    return leaked


def _new_sockets(before):
    """Socket fds opened since ``before`` and still open after a collection and a short wait."""
    after = _socket_fds()
    if after is None or before is None:
        return []
    old = set(before.values())
    if not set(after.values()) - old:
        return []
    # A socket object nobody references any more is closed by the collector
    # (and its ResourceWarning then fails the test on its own).
    gc.collect()
    deadline = time.monotonic() + SETTLE
    while True:
        after = _socket_fds()
        new = {fd: target for fd, target in after.items() if target not in old}
        if not new or time.monotonic() >= deadline:
            return sorted(new.items())
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_leaks(request):
    """Fail a test that leaves a thread, a child process or a socket open."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    main_pid = os.getpid()
    threads = set(threading.enumerate())
    children = _children()
    sockets = _socket_fds()
    yield
    if os.getpid() != main_pid:
        # A forked handler came back into pytest: it must never run our teardown.
        os._exit(70)
    problems = []
    leaked_threads = _new_threads(threads)
    if leaked_threads:
        problems.append(f"threads still running: {leaked_threads}")
    leaked_children = _new_children(children)
    if leaked_children:
        problems.append(f"child processes left behind (killed and reaped now): {leaked_children}")
    leaked_sockets = _new_sockets(sockets)
    if leaked_sockets:
        problems.append(f"socket fds left open: {leaked_sockets}")
    if problems:
        pytest.fail("test leaked resources: " + "; ".join(problems), pytrace=False)


# -- a running server on port 0 --------------------------------------------------


def _run_bounded(action, what, timeout=TIMEOUT):
    """Call ``action()`` in a helper thread; fail if it does not return within ``timeout``."""
    outcome = {}

    def target():
        try:
            action()
        except BaseException as exc:  # reported in the calling thread below
            outcome["error"] = exc

    helper = threading.Thread(target=target, name=f"bounded {what}", daemon=True)
    helper.start()
    helper.join(timeout)
    assert not helper.is_alive(), f"{what} did not return within {timeout} s"
    if "error" in outcome:
        raise outcome["error"]


class ServerRunner:
    """Start servers on port 0 (or a fresh Unix path) and always tear them down cleanly."""

    def __init__(self):
        self._servers = {}  # id(server) -> [server, serving thread or None, tmp dir or None]

    def __call__(self, server_class, handler, *, serve=True, bind_and_activate=True, **attrs):
        """Create ``server_class`` (subclassed with ``attrs`` as class attributes) and serve it.

        With ``serve=False`` the server is only created; call ``serve()`` or
        use ``handle_request()`` yourself.  Teardown is automatic.
        """
        if attrs:
            server_class = type(server_class.__name__, (server_class,), attrs)
        tmpdir = None
        if is_unix(server_class):
            # Short on purpose: AF_UNIX paths are limited to about 107 bytes.
            tmpdir = tempfile.mkdtemp(prefix="ss-")  # in this test's own TMPDIR
            address = os.path.join(tmpdir, "sock")
        else:
            address = ("127.0.0.1", 0)
        try:
            server = server_class(address, handler, bind_and_activate=bind_and_activate)
        except BaseException:
            if tmpdir is not None:
                if os.path.exists(address):
                    os.unlink(address)
                os.rmdir(tmpdir)
            raise
        self._servers[id(server)] = [server, None, tmpdir]
        if serve:
            self.serve(server)
        return server

    def serve(self, server, poll_interval=POLL):
        """Run ``server.serve_forever(poll_interval)`` in a new thread."""
        entry = self._servers[id(server)]
        assert entry[1] is None, "already serving"
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name=f"serve {type(server).__name__}",
        )
        entry[1] = thread
        thread.start()

    def thread(self, server):
        """The thread running ``server.serve_forever()``, or None."""
        return self._servers[id(server)][1]

    def stop_serving(self, server):
        """shutdown() from this thread (bounded) and join the serving thread; do not close."""
        entry = self._servers.get(id(server))
        if entry is None:
            return  # already stopped
        thread, entry[1] = entry[1], None
        if thread is None:
            return
        _run_bounded(server.shutdown, "shutdown()")
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "serve_forever() did not return after shutdown()"

    def stop(self, server):
        """Stop serving, server_close() (bounded), check the socket is closed, remove the path.

        Stopping a server twice is harmless.
        """
        if id(server) not in self._servers:
            return
        self.stop_serving(server)
        _, _, tmpdir = self._servers.pop(id(server))
        try:
            _run_bounded(server.server_close, "server_close()", timeout=2 * TIMEOUT)
            assert server.socket.fileno() == -1, "server_close() left the listening socket open"
        finally:
            if tmpdir is not None:
                # The stdlib leaves the socket file behind on close: removing it is our job.
                path = os.path.join(tmpdir, "sock")
                if os.path.lexists(path):
                    os.unlink(path)
                os.rmdir(tmpdir)  # fails if a test left another file there

    def stop_all(self):
        """Stop every server still running, newest first; raise the first failure."""
        first_error = None
        for server, _, _ in reversed(list(self._servers.values())):
            try:
                self.stop(server)
            except BaseException as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error


@pytest.fixture
def running_server():
    """Factory: ``running_server(server_class, handler, **class_attrs) -> server``.

    The server listens on 127.0.0.1 port 0 (read ``server.server_address``)
    or on a fresh short Unix path, and is served with poll_interval=0.05.
    Use ``running_server.stop(server)`` to stop it early, for instance before
    reading recorded events; teardown stops whatever is left.
    """
    runner = ServerRunner()
    yield runner
    runner.stop_all()


# -- the website as published (tests/test_site.py, tests/test_site_lessons.py) -------
# Each fixture imports tests/site_support.py itself: only the website's tests need it
# (and test_core_guard.py runs a copy of this file where it is not at hand).


@pytest.fixture(scope="session")
def site_server(tmp_path_factory):
    """An HTTP server on 127.0.0.1, at a free port, for the folder the site is built into.

    It exists before the build because the build needs its address: Material's
    instant navigation works only where the site is served at its site_url.
    """
    import site_support
    site_dir = tmp_path_factory.mktemp("site-build") / "site"
    handler = functools.partial(site_support.SubPathHandler, directory=str(site_dir))
    server = site_support.SiteServer(("127.0.0.1", 0), handler)
    try:
        yield server, site_dir
    finally:
        server.server_close()


@pytest.fixture(scope="session")
def built(site_server):
    """The published site (sub-path, repository set), built once per session (per worker)."""
    import site_support
    server, site_dir = site_server
    host, port = server.server_address[:2]
    return site_support.mkdocs_build(
        site_dir, SOCKSERV_SITE_URL=f"http://{host}:{port}{site_support.SUB_PATH}",
        SOCKSERV_REPO_URL=site_support.REPO_URL, SOCKSERV_OFFLINE=None)


@pytest.fixture(scope="session")
def site(built):
    """The built site; fails (once per test) if the build itself failed."""
    if built.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{built.output}", pytrace=False)
    return built


@pytest.fixture(scope="session")
def site_url(site, site_server):
    """The built site's address (under SUB_PATH), served for the rest of the session."""
    import site_support
    server, _ = site_server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="site-server")
    thread.start()
    try:
        yield "http://%s:%d%s" % (*server.server_address[:2], site_support.SUB_PATH)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the browser tests of a worker; see site_support.launch_browser()."""
    import site_support
    with site_support.launch_browser() as chromium:
        yield chromium


@pytest.fixture(scope="session")
def browser_context(browser):
    """The desktop, light-scheme context (pages, solutions, downloads, navigation)."""
    import site_support
    context = site_support.new_context(browser)
    try:
        yield context
    finally:
        context.close()
