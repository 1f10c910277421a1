"""Shared pieces for the core tests: one scenario, two implementations.

Every core test runs the same scenario on the stdlib ``socketserver`` and on
``sockserv`` and expects the same bytes and the same sequence of hook calls.
This module holds what those tests share:

* the implementations and the server class names, and ``servers()`` /
  ``impls()`` to parametrize a test over them with ids such as
  ``stdlib-ThreadingTCPServer``;
* small blocking clients with explicit timeouts (stream and datagram, INET
  and Unix);
* ``recording()``: a subclass of any server class that records every hook
  call, tagged with *where* it ran -- ``loop`` (the thread running
  ``serve_forever()``/``handle_request()``), ``thread`` (a ThreadingMixIn
  handler thread) or ``child`` (a ForkingMixIn child process);
* ``recording_handler()``: an echo handler that records setup/handle/finish
  on its server and raises when asked to.

A forked child must never touch pytest: it reports its hook calls through a
socket pair created before the fork, and nothing else.  A forked child also
inherits every socket the test process has open, the test's own clients
included, so a client signals EOF with ``shutdown(SHUT_WR)``: ``close()``
sends nothing while a copy is open somewhere.
"""

import contextlib
import os
import socket
import socketserver
import sys
import tempfile
import threading
import time

import pytest

from sockserv.teach.harness import IMPLEMENTATIONS

#: Generous bound for every blocking call a test makes (a hang check only).
TIMEOUT = 5.0
#: serve_forever() poll interval used throughout the tests.  Short, because
#: the stdlib's shutdown() waits for its loop's next turn (sockserv's does not).
POLL = 0.02

#: From Python 3.12 os.fork() warns (DeprecationWarning) when the process has
#: other threads, and a test that forks always has some: the serving thread,
#: pytest-timeout's.  The forking tests fork on purpose and their children
#: only touch sockets, so they ignore exactly that warning, and nothing else
#: (pytest turns every other warning into an error).  Python 3.10 and 3.11
#: never emit it, so the mark is inert there.
FORK_WARNING = pytest.mark.filterwarnings(
    r"ignore:This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"
    r" in the child\.:DeprecationWarning"
)

TCP = ("TCPServer", "ThreadingTCPServer", "ForkingTCPServer")
UDP = ("UDPServer", "ThreadingUDPServer", "ForkingUDPServer")
UNIX_STREAM = ("UnixStreamServer", "ThreadingUnixStreamServer")
UNIX_DGRAM = ("UnixDatagramServer", "ThreadingUnixDatagramServer")
# Python 3.12 added forking Unix servers; run them too where the stdlib has them.
if hasattr(socketserver, "ForkingUnixStreamServer"):
    UNIX_STREAM += ("ForkingUnixStreamServer",)
if hasattr(socketserver, "ForkingUnixDatagramServer"):
    UNIX_DGRAM += ("ForkingUnixDatagramServer",)

STREAM = TCP + UNIX_STREAM
DGRAM = UDP + UNIX_DGRAM
ALL = STREAM + DGRAM
SYNC = tuple(n for n in ALL if not n.startswith(("Threading", "Forking")))
THREADING = tuple(n for n in ALL if n.startswith("Threading"))
FORKING = tuple(n for n in ALL if n.startswith("Forking"))


def _platform_marks(name):
    """Marks for a class: skip where this stdlib lacks it (no fork, no AF_UNIX); the fork warning."""
    if not hasattr(socketserver, name):
        return (pytest.mark.skip(reason=f"socketserver.{name} does not exist on this platform"),)
    return (FORK_WARNING,) if name.startswith("Forking") else ()


def impls():
    """Parameters for a test that takes ``impl`` (a module)."""
    return [pytest.param(module, id=label) for label, module in IMPLEMENTATIONS.items()]


def servers(*names):
    """Parameters ``(impl, server_class)`` for every implementation and named class."""
    params = []
    for label, module in IMPLEMENTATIONS.items():
        for name in names:
            marks = _platform_marks(name)
            server_class = getattr(module, name, None)
            params.append(pytest.param(module, server_class, id=f"{label}-{name}", marks=marks))
    return params


def on_both(name):
    """``(label, impl, server_class)`` for each implementation: for tests that compare the two."""
    for label, module in IMPLEMENTATIONS.items():
        yield label, module, getattr(module, name)


def class_names(*names):
    """Parameters ``name`` for tests that run the scenario on both implementations themselves."""
    return [pytest.param(name, id=name, marks=_platform_marks(name)) for name in names]


# -- what kind of server is this? (works for both implementations) ----------


def is_stream(server_class):
    """True for stream servers (TCP, Unix stream)."""
    return server_class.socket_type == socket.SOCK_STREAM


def is_unix(server_class):
    """True for AF_UNIX servers."""
    return server_class.address_family == getattr(socket, "AF_UNIX", object())


def concurrency(server_class):
    """Where requests are handled: 'loop' (synchronous), 'thread' or 'child'."""
    names = {klass.__name__ for klass in server_class.__mro__}
    if "ThreadingMixIn" in names:
        return "thread"
    if "ForkingMixIn" in names:
        return "child"
    return "loop"


def handler_base(impl, server_class):
    """The implementation's StreamRequestHandler or DatagramRequestHandler, to suit the server."""
    return impl.StreamRequestHandler if is_stream(server_class) else impl.DatagramRequestHandler


# -- clients ------------------------------------------------------------------


def stream_client(server):
    """A connected stream socket to ``server`` with a timeout; the caller closes it."""
    sock = socket.socket(server.address_family, socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(server.server_address)
    except BaseException:
        sock.close()
        raise
    return sock


def recv_until_eof(sock):
    """Everything the peer sends until it closes its side."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def recv_exactly(sock, size):
    """Exactly ``size`` bytes (fails on EOF or timeout)."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}, expected {size} bytes"
        data += chunk
    return data


@contextlib.contextmanager
def datagram_client(server):
    """A bound datagram socket for ``server`` (Unix: its own short path in TMPDIR)."""
    sock = socket.socket(server.address_family, socket.SOCK_DGRAM)
    tmpdir = None
    try:
        sock.settimeout(TIMEOUT)
        if is_unix(type(server)):
            # A Unix datagram server can only answer a client that has an address.
            tmpdir = tempfile.mkdtemp(prefix="ssc-")  # in the test's own TMPDIR (conftest.py)
            sock.bind(os.path.join(tmpdir, "client"))
        else:
            sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()
        if tmpdir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(tmpdir, "client"))
            os.rmdir(tmpdir)


def exchange(server, payload):
    """Send one request and return the whole reply (stream: until EOF; datagram: one datagram)."""
    if is_stream(type(server)):
        with stream_client(server) as sock:
            sock.sendall(payload)
            return recv_until_eof(sock)
    with datagram_client(server) as sock:
        sock.sendto(payload, server.server_address)
        return sock.recv(65536)


def exchange_by_handle_request(server, payload):
    """Queue one request, let ``server.handle_request()`` take it, return the reply.

    Runs in the calling thread, so keep replies small (they must fit in the
    socket buffers before the client reads them).
    """
    if is_stream(type(server)):
        with stream_client(server) as sock:
            sock.sendall(payload)
            assert server.handle_request() is None
            return recv_until_eof(sock)
    with datagram_client(server) as sock:
        sock.sendto(payload, server.server_address)
        assert server.handle_request() is None
        return sock.recv(65536)


def wait_until(predicate, timeout=TIMEOUT, interval=0.01):
    """Poll ``predicate`` until true; return its last value (bounded, never raises)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# -- recording servers and handlers --------------------------------------------

#: Server hooks that ``recording()`` records.
HOOKS = (
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
    "service_actions",
)


def _record_on(server, name):
    """Record ``name`` on ``server`` if it records (handlers also run on plain servers)."""
    record = getattr(server, "record", None)
    if record is not None:
        record(name)


def _make_hook(name):
    def hook(self, *args, **kwargs):
        self.record(name)
        return getattr(super(self._recording_class, self), name)(*args, **kwargs)

    hook.__name__ = name
    return hook


def recording(server_class):
    """A subclass of ``server_class`` that records its hook calls in ``events``.

    ``events`` is a list of ``(where, who, name)``: ``where`` is ``loop``,
    ``thread`` or ``child``; ``who`` tells requests apart (thread id, pid).
    ``errors`` lists ``(where, "ExceptionName: message")`` for every
    handle_error() call; the default handle_error() is not called (so the
    test output stays quiet) unless the class attribute ``print_errors`` is
    true.  Child processes report through a socket pair that server_close()
    drains, so read ``events`` after server_close().
    """

    namespace = {name: _make_hook(name) for name in HOOKS if name != "handle_error"}

    def __init__(self, *args, **kwargs):
        self.events = []
        self.errors = []
        self.loop_ident = threading.get_ident()
        self.parent_pid = os.getpid()
        self._reports, self._reporter = socket.socketpair()
        try:
            server_class.__init__(self, *args, **kwargs)
        except BaseException:
            self._close_reports()
            raise

    def record(self, name):
        if os.getpid() != self.parent_pid:
            # In a forked child: talk to the parent through the socket only.
            self._reporter.sendall(f"{os.getpid()} {name}\n".encode())
        elif threading.get_ident() == self.loop_ident:
            self.events.append(("loop", self.loop_ident, name))
        else:
            self.events.append(("thread", threading.get_ident(), name))

    def handle_error(self, request, client_address):
        self.record("handle_error")
        kind, value, _ = sys.exc_info()
        self.record(f"!{kind.__name__ if kind else None}: {value}")
        if self.print_errors:
            server_class.handle_error(self, request, client_address)

    def serve_forever(self, *args, **kwargs):
        self.loop_ident = threading.get_ident()
        return server_class.serve_forever(self, *args, **kwargs)

    def handle_request(self):
        self.loop_ident = threading.get_ident()
        return server_class.handle_request(self)

    def server_close(self):
        try:
            server_class.server_close(self)
        finally:
            self._close_reports()

    def _close_reports(self):
        if self._reports.fileno() == -1:
            return
        self._reports.setblocking(False)
        data = b""
        with contextlib.suppress(BlockingIOError):
            while True:
                chunk = self._reports.recv(65536)
                if not chunk:
                    break
                data += chunk
        self._reports.close()
        self._reporter.close()
        for line in data.decode().splitlines():
            pid, name = line.split(" ", 1)
            self.events.append(("child", int(pid), name))

    namespace.update(
        __init__=__init__,
        record=record,
        handle_error=handle_error,
        serve_forever=serve_forever,
        handle_request=handle_request,
        server_close=server_close,
        _close_reports=_close_reports,
        print_errors=False,
    )
    cls = type(server_class.__name__, (server_class,), namespace)
    cls._recording_class = cls
    return cls


def hook_sequences(events, drop=("service_actions",)):
    """``{where: [sequence per thread/process]}`` without errors and repeated service_actions."""
    grouped = {}
    for where, who, name in events:
        if name in drop or name.startswith("!"):
            continue
        grouped.setdefault(where, {}).setdefault(who, []).append(name)
    return {where: list(by_who.values()) for where, by_who in grouped.items()}


def errors(events):
    """The ``"Type: message"`` strings that handle_error() saw, in order."""
    return [name[1:] for _, _, name in events if name.startswith("!")]


def recording_handler(impl, server_class, **attrs):
    """An echo handler (one line in, the same line out) for ``server_class``'s kind.

    It records setup/handle/finish on a recording server, raises ValueError
    from handle() for a line starting with ``raise`` (SystemExit for
    ``exit``), and ValueError from setup() when
    the class attribute ``fail_setup`` is true.  Extra ``attrs`` become class
    attributes (rbufsize, timeout, ...).
    """
    base = handler_base(impl, server_class)

    class Echo(base):
        fail_setup = False

        def setup(self):
            _record_on(self.server, "setup")
            if self.fail_setup:
                # Before the base setup, so no file objects are left open.
                raise ValueError("setup failed")
            super().setup()

        def handle(self):
            _record_on(self.server, "handle")
            line = self.rfile.readline()
            if line.startswith(b"raise"):
                raise ValueError(line.strip().decode())
            if line.startswith(b"exit"):
                raise SystemExit(3)
            if line:  # (an empty write to a Unix socket whose peer left fails with EPIPE)
                self.wfile.write(line)

        def finish(self):
            _record_on(self.server, "finish")
            super().finish()

    return type("Echo", (Echo,), attrs) if attrs else Echo


def expected_sequences(server_class, request_hooks):
    """The hook order stdlib documents for one verified request, per concurrency model.

    ``request_hooks`` is what runs for the request itself, from finish_request
    to close_request.
    """
    accept = ["get_request", "verify_request", "process_request"]
    where = concurrency(server_class)
    if where == "loop":
        return {"loop": [accept + request_hooks]}
    if where == "thread":
        return {"loop": [accept], "thread": [request_hooks]}
    # ForkingMixIn: the parent only closes its copy of the request.
    return {"loop": [accept + ["close_request"]], "child": [request_hooks]}


def ok_request_hooks():
    """Hooks for a request whose handler returns normally."""
    return ["finish_request", "setup", "handle", "finish", "shutdown_request", "close_request"]


def blocking_handler(impl, server_class):
    """An echo handler that, once it has read its line, waits until ``release`` is set.

    Its class attributes ``entered``, ``release`` and ``finished`` are fresh
    events and ``threads`` lists the threads it ran in.  The wait is bounded
    (TIMEOUT), so a failing test cannot leave it blocked.  Events do not
    cross a fork: use it with synchronous and threading servers only.
    """
    base = handler_base(impl, server_class)

    class Blocking(base):
        entered = threading.Event()
        release = threading.Event()
        finished = threading.Event()
        threads = []

        def handle(self):
            line = self.rfile.readline()
            self.threads.append(threading.current_thread())
            self.entered.set()
            self.release.wait(TIMEOUT)
            self.wfile.write(line)
            self.finished.set()

    return Blocking


def send_request(client, server, payload):
    """Send ``payload`` on a stream or datagram client socket."""
    if client.type == socket.SOCK_STREAM:
        client.sendall(payload)
    else:
        client.sendto(payload, server.server_address)


def read_reply(client):
    """The reply on a stream (until EOF) or datagram client socket."""
    if client.type == socket.SOCK_STREAM:
        return recv_until_eof(client)
    return client.recv(65536)


@contextlib.contextmanager
def client_for(server):
    """A stream (connected) or datagram (bound) client socket for ``server``."""
    if is_stream(type(server)):
        with stream_client(server) as sock:
            yield sock
    else:
        with datagram_client(server) as sock:
            yield sock
