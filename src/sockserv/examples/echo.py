"""Echo servers (RFC 862): every byte a client sends comes straight back.

An echo server is the smallest server that still does something useful, which makes it the
course's first worked example.  It is built from the same pieces as any `socketserver`
program: a server class chosen by transport (TCP or UDP) and by concurrency (one client at a
time, a thread per client, or a process per client), plus a request handler with one job.

    make_server(address, impl=..., udp=..., mode=...)
        |
        +-- server_class(impl, udp, mode)      StoppableMixIn + impl.<Mode><Transport>Server
        +-- handler_class(impl, udp)           StreamEcho or DatagramEcho + impl.BaseRequestHandler

`impl` is the module the classes come from: the standard library's `socketserver` or the
course's own `sockserv`.  Both expose the same names with the same behaviour, so one echo
server runs on either, and the tests run every scenario on both.

The TCP handler is a recv()/sendall() loop rather than readline(): echo is about bytes, not
lines, so binary data, NUL bytes and invalid UTF-8 come back unchanged, however the network
chunks them.  recv() returning b'' means the client will send no more (it closed, or shut
down its write side); everything it sent has been echoed by then, so returning from handle()
lets the server shut the connection down and the client sees EOF.

Stopping a server that has clients is the hard part, and the reason for StoppableMixIn.
`shutdown()` only ends the serve_forever() loop: a thread blocked in recv() on an idle client
would keep the process alive, `server_close()` would wait for it forever, and forked children
would outlive their parent.  So the mixin keeps a registry of live connections and `stop()`
shuts each one down (which wakes the blocked recv()), terminates and reaps forked children,
and only then closes the server.
"""

import functools
import logging
import os
import signal
import socket
import sys
import threading
import time

__all__ = ["MODES", "StoppableMixIn", "StreamEcho", "DatagramEcho",
           "server_class", "handler_class", "make_server"]

logger = logging.getLogger("sockserv.echo")

#: The concurrency models a server can use, in the order the course introduces them.
MODES = ("sync", "threading", "forking")

# Which class of `impl` each (mode, transport) combination starts from.
_BASE_NAMES = {
    ("sync", False): "TCPServer",
    ("threading", False): "ThreadingTCPServer",
    ("forking", False): "ForkingTCPServer",
    ("sync", True): "UDPServer",
    ("threading", True): "ThreadingUDPServer",
    ("forking", True): "ForkingUDPServer",
}

#: Seconds a forked child gets to die after SIGTERM before stop() sends SIGKILL.
CHILD_GRACE = 1.0


def _format_address(address):
    """Return 'host:port' for a socket address, or its str() for anything else."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _restore_default_signals():
    """Make SIGINT and SIGTERM kill this process again (used in forked children)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, signal.SIG_DFL)
        except ValueError:      # not the main thread: cannot change handlers here
            pass


class StoppableMixIn:

    """Mix-in that gives a server a stop() that works with clients still connected.

    Put it first in the bases, before the `socketserver`-style server class, so that its
    methods wrap the server's own.

    Methods for the caller:

    - stop()            stop serving, cut every live connection, end forked children,
                        reap them, close the server.  Idempotent and bounded: returns
                        within about CHILD_GRACE + poll_interval seconds.  Call it from
                        any thread except the one running serve_forever().

    Methods that extend the server's (call super()):

    - serve_forever()   refuses to start once stop() has begun.
    - process_request() records a stream connection in the registry before handling it.
    - close_request()   removes it again.
    - finish_request()  in a forked child, restores the default SIGINT/SIGTERM handlers so
                        that the child dies when told to.
    - handle_error()    logs one line instead of printing a traceback.

    Class variables: request_queue_size is raised to 128 so that a class of 30 students
    connecting in the same second is not refused by a full listen backlog; max_children is
    raised to the same figure for forking servers.
    """

    request_queue_size = 128
    max_children = 128
    # A datagram can be up to 64 KiB; the default of 8 KiB would truncate what we echo.
    max_packet_size = 65536

    def __init__(self, *args, **kwargs):
        # State first: the base __init__ calls server_close() itself if bind() fails.  The
        # names are prefixed so that they can never collide with the server classes' own.
        self._echo_state_lock = threading.Lock()
        self._echo_live = set()
        self._echo_stopping = False
        self._echo_serving = False
        self._echo_stopped = threading.Event()
        self._echo_owner_pid = os.getpid()
        super().__init__(*args, **kwargs)

    def _in_child(self):
        """True in a process forked to handle one request."""
        return os.getpid() != self._echo_owner_pid

    def serve_forever(self, poll_interval=0.5):
        """Serve until shutdown(); returns at once if stop() has begun."""
        with self._echo_state_lock:
            if self._echo_stopping:
                return
            self._echo_serving = True
        try:
            super().serve_forever(poll_interval)
        finally:
            with self._echo_state_lock:
                self._echo_serving = False

    def process_request(self, request, client_address):
        """Record a stream connection, then handle it as the base class does."""
        if isinstance(request, socket.socket):
            with self._echo_state_lock:
                if self._echo_stopping:
                    # Accepted while stopping: cut it now so its handler ends at once.
                    self._cut(request)
                else:
                    self._echo_live.add(request)
        super().process_request(request, client_address)

    def close_request(self, request):
        """Forget a connection, then close it."""
        if not self._in_child():
            with self._echo_state_lock:
                self._echo_live.discard(request)
        super().close_request(request)

    def finish_request(self, request, client_address):
        """Handle one request; in a forked child, first make the child killable."""
        if self._in_child():
            _restore_default_signals()
            # The parent's lock may have been held by another thread at fork time.
            self._echo_state_lock = threading.Lock()
            self._echo_live = set()
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        """Log one line about an exception raised while handling a request."""
        exc = sys.exc_info()[1]
        logger.error("error serving %s: %s: %s", _format_address(client_address),
                     type(exc).__name__, exc, exc_info=logger.isEnabledFor(logging.DEBUG))

    @staticmethod
    def _cut(sock):
        """Shut a connection down both ways, waking any thread blocked on it."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:         # already closed or reset: nothing left to wake
            pass

    def stop(self):
        """Stop serving and end every connection and child; safe to call twice."""
        with self._echo_state_lock:
            first = not self._echo_stopping
            self._echo_stopping = True
            serving = self._echo_serving
            # Under the lock, so that no socket in the registry has been closed yet.
            for sock in self._echo_live:
                self._cut(sock)
        if not first:
            self._echo_stopped.wait()
            return
        try:
            # Children first: a forking server blocks in collect_children() once it has
            # max_children of them, and then its loop would never see the shutdown request.
            self._signal_children(signal.SIGTERM)
            if serving:
                self.shutdown()
            self._reap_children()
            self.server_close()
        finally:
            self._echo_stopped.set()
        logger.info("server stopped")

    def _children(self):
        """The set of live forked children (empty for other servers)."""
        return getattr(self, "active_children", None) or set()

    def _signal_children(self, signum):
        """Send signum to every live forked child."""
        for pid in list(self._children()):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # already gone; waitpid will collect it
                pass

    def _reap_children(self):
        """Terminate and wait for every forked child: SIGTERM, then SIGKILL after a grace."""
        children = self._children()
        if not children:
            return
        self._signal_children(signal.SIGTERM)
        deadline = time.monotonic() + CHILD_GRACE
        while children and time.monotonic() < deadline:
            for pid in list(children):
                if self._collect(pid, os.WNOHANG):
                    children.discard(pid)
            if children:
                time.sleep(0.01)
        if children:
            logger.warning("%d child(ren) ignored SIGTERM; killing them", len(children))
            self._signal_children(signal.SIGKILL)
            for pid in list(children):
                self._collect(pid, 0)
                children.discard(pid)

    @staticmethod
    def _collect(pid, options):
        """waitpid() one child; True once it has been reaped (or was never ours)."""
        try:
            done, _ = os.waitpid(pid, options)
        except ChildProcessError:
            return True
        return done != 0


class StreamEcho:

    """Request handler body for TCP: send every received byte back until the client stops.

    Combined with `impl.BaseRequestHandler` by handler_class().  handle() ends when recv()
    returns b'' (the client closed or shut down its write side) or the connection fails;
    the server then shuts the connection down, so the client sees EOF after the last byte.
    """

    #: Bytes asked for per recv(); any size works, bigger means fewer system calls.
    bufsize = 65536

    def handle(self):
        """Echo until EOF or a connection error."""
        peer = _format_address(self.client_address)
        logger.info("%s connected", peer)
        echoed = 0
        reason = "closed"
        try:
            while True:
                data = self.request.recv(self.bufsize)
                if not data:
                    break
                self.request.sendall(data)
                echoed += len(data)
        except OSError as exc:  # reset by the client, or cut by stop()
            reason = exc.strerror or type(exc).__name__
        logger.info("%s left (%s) after %d bytes", peer, reason, echoed)


class DatagramEcho:

    """Request handler body for UDP: send the datagram back to its sender, unchanged."""

    def handle(self):
        """Echo one datagram."""
        data, sock = self.request
        try:
            sock.sendto(data, self.client_address)
        except OSError as exc:
            logger.info("cannot echo to %s: %s", _format_address(self.client_address), exc)
        else:
            logger.debug("echoed %d bytes to %s", len(data),
                         _format_address(self.client_address))


@functools.lru_cache(maxsize=None)
def server_class(impl, *, udp=False, mode="threading"):
    """Return the echo server class for `impl` (a socketserver-like module), transport, mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "forking" and not hasattr(os, "fork"):
        raise ValueError("forking mode needs os.fork(), which this platform lacks")
    base = getattr(impl, _BASE_NAMES[mode, udp])
    name = f"Echo{base.__name__}"
    attrs = {
        "__doc__": f"{base.__name__} from {impl.__name__}, stoppable with clients connected.",
        "__module__": __name__,
        # Rebinding right after a stop must work for TCP (no waiting out TIME_WAIT). Not on
        # Windows, where SO_REUSEADDR would let a second server share the port, and never
        # for UDP, where it lets two servers bind the same port on Linux too.
        "allow_reuse_address": os.name == "posix" and not udp,
    }
    return type(name, (StoppableMixIn, base), attrs)


@functools.lru_cache(maxsize=None)
def handler_class(impl, *, udp=False):
    """Return the echo request handler class built on `impl.BaseRequestHandler`."""
    body = DatagramEcho if udp else StreamEcho
    return type(f"{body.__name__}Handler", (body, impl.BaseRequestHandler),
                {"__doc__": body.__doc__, "__module__": __name__})


def make_server(address, *, impl, udp=False, mode="threading"):
    """Return an echo server bound to `address` and listening; run serve_forever() on it."""
    cls = server_class(impl, udp=udp, mode=mode)
    return cls(address, handler_class(impl, udp=udp))
