"""Checks for lesson 09's exercises: extending sockserv in a subclass.

Each check runs the learner's class on real servers bound to 127.0.0.1,
port 0, with a handler of its own, and then either prints one "Check
passed" line or raises ``ExerciseFailed`` with one sentence.

* ``check_pool_mixin``: a mix-in whose process_request() hands each request
  to a pool of ``max_workers`` threads (concurrent.futures), on both
  implementations.  Handlers that wait on a gate show how many run at once
  (exactly max_workers: not fewer, not more); a request whose handler raises
  must reach handle_error() (a Future keeps an exception to itself unless
  someone asks) and still be shut down; server_close() must wait for the
  queued work and leave no pool thread running.
* ``check_idle_server``: a TCPServer whose serve_forever() returns on its
  own once no request has come for ``idle_timeout`` seconds, using
  service_actions(), which the loop calls once per turn.  shutdown() from
  service_actions() runs in the serving thread and would wait for itself:
  the check wraps the learner's class so that such a call is *seen* (and
  reported) instead of deadlocking.  Requests come at a tenth of the idle
  timeout, for longer than the timeout, so a clock that is never reset
  stops too early; then the clients go quiet, and the loop must end.

Bounds come from ``sockserv.teach.harness``; a wrong answer fails within
them and leaves nothing running (a thread the check cannot stop is a
daemon, released when the check's gate opens).
"""

import socket
import socketserver
import sys
import threading
import time

import sockserv

from .checks import ExerciseFailed, check, describe_error, passed, require_filled_in
from .harness import (CLIENT_TIMEOUT, IMPLEMENTATIONS, LOCALHOST,
                      STOP_TIMEOUT, TimedOut, connect, read_all, serving, talk)

__all__ = ["check_pool_mixin", "check_idle_server"]

#: How long the pool check waits to see whether more handlers start than max_workers.
SETTLE = 0.3
#: How often the idle check runs again when the machine was too busy to tell (its own
#: requests came further apart than the server's idle_timeout).
BUSY_RETRIES = 3
#: check_idle_server()'s serve loop turns this often when idle: far more turns than
#: seconds, so an answer that counts turns instead of seconds stops much too soon,
#: however busy the machine is (a busy machine only makes each turn longer).
IDLE_CHECK_POLL_INTERVAL = 0.01


def _disguised(wrapper, original):
    """Give wrapper the learner's class name, so sentences name their class."""
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    return wrapper


# -- exercise 1: a thread-pool mix-in ----------------------------------------------


class _Gate:
    """What the check's handlers share: who is running, the most at once, and a gate."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started = 0
        self.threads = set()
        self.open = threading.Event()
        self.changed = threading.Condition(self.lock)

    def enter(self):
        with self.lock:
            self.running += 1
            self.started += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread())
            self.changed.notify_all()

    def leave(self):
        with self.lock:
            self.running -= 1

    def wait_for_started(self, count, timeout):
        with self.lock:
            return self.changed.wait_for(lambda: self.started >= count, timeout)


def _gated_handler(impl, gate):
    class Gated(impl.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            gate.enter()
            try:
                gate.open.wait(CLIENT_TIMEOUT)  # bounded: a failing check still ends
                if line.startswith(b"raise"):
                    raise ValueError("the check's handler fails on purpose")
                self.wfile.write(line.upper())
            finally:
                gate.leave()

    return Gated


def _pool_server(mixin, impl, workers):
    """TCPServer of impl with the learner's mix-in first, recording handle_error()."""

    class Pooled(mixin, impl.TCPServer):
        max_workers = workers

        def __init__(self, *args, **kwargs):
            self.errors = []
            self.accepted = []  # closed by the check afterwards if the answer leaves them open
            super().__init__(*args, **kwargs)

        def get_request(self):
            request, client_address = super().get_request()
            self.accepted.append(request)
            return request, client_address

        def handle_error(self, request, client_address):
            self.errors.append(sys.exc_info()[1])

    return _disguised(Pooled, mixin)


def _pool_run(mixin, impl, workers):
    """Run the gated scenario; return a dict of what was seen."""
    gate = _Gate()
    server_class = _pool_server(mixin, impl, workers)
    try:
        server = server_class(LOCALHOST, _gated_handler(impl, gate))
    except Exception as error:
        raise ExerciseFailed(f"creating a server with {mixin.__name__} raised "
                             f"{describe_error(error)}.") from None
    seen = {"replies": [], "loop_thread": None}
    lines = [b"raise\n"] + [b"line %d\n" % n for n in range(workers + 1)]
    clients = []
    closed = False
    try:
        with serving(server, stop_timeout=STOP_TIMEOUT):
            for line in lines:
                sock = connect(server.server_address)
                clients.append(sock)
                sock.sendall(line)
                sock.shutdown(socket.SHUT_WR)
            gate.wait_for_started(workers, CLIENT_TIMEOUT)
            time.sleep(SETTLE)  # time for any handler beyond max_workers to start
            with gate.lock:
                seen["at_once"] = gate.running
            gate.open.set()
            deadline = time.monotonic() + CLIENT_TIMEOUT
            for sock in clients:
                try:
                    seen["replies"].append(read_all(sock, deadline))
                except OSError as error:
                    seen["replies"].append(error)
        # serving() has called server_close() by now.
        closed = True
    except TimedOut:
        seen["stop_timed_out"] = True
    except ExerciseFailed:
        raise
    except Exception as error:
        seen["loop_error"] = error
    finally:
        gate.open.set()
        for sock in clients:
            sock.close()
        if not closed:
            server.socket.close()
        for request in server.accepted:
            request.close()  # a no-op for every connection the answer did close
    seen["most"] = gate.most
    seen["started"] = gate.started
    seen["threads"] = gate.threads
    seen["errors"] = server.errors
    seen["expected"] = [b""] + [line.upper() for line in lines[1:]]
    return seen


def _judge_pool(label, workers, seen):
    """Fail with the first thing that went wrong in one run, in the order a learner fixes them."""
    if "loop_error" in seen:
        raise ExerciseFailed(f"on {label}, serve_forever() stopped with "
                             f"{describe_error(seen['loop_error'])}: process_request() must not raise.")
    check("stop_timed_out" not in seen,
          f"on {label}, the server did not stop within {STOP_TIMEOUT:g} s: server_close() must "
          f"wait for the pool's work and then return.")
    check(seen["started"] > 0,
          f"on {label}, no handler ran at all: process_request() must submit "
          f"finish_request() to the pool.")
    check(seen.get("at_once", 0) <= workers and seen["most"] <= workers,
          f"on {label}, {max(seen['most'], seen.get('at_once', 0))} handlers ran at once with "
          f"max_workers = {workers}: create one pool per server, not one per request.")
    check(seen.get("at_once", 0) == workers,
          f"on {label}, only {seen.get('at_once', 0)} handler ran at once with max_workers = "
          f"{workers}: hand each request to the pool and return, do not wait for it.")
    for got, want in zip(seen["replies"], seen["expected"]):
        if isinstance(got, OSError):
            raise ExerciseFailed(
                f"on {label}, a client waited in vain for the end of its reply "
                f"({describe_error(got)}): call shutdown_request() after every request, "
                f"also when the handler raises.")
        check(got == want, f"on {label}, a client got {got!r}, expected {want!r}.")
    check(len(seen["errors"]) == 1 and isinstance(seen["errors"][0], ValueError),
          f"on {label}, handle_error() saw {len(seen['errors'])} errors where one handler "
          f"raised ValueError: catch it in the pool's task and call handle_error().")
    alive = [thread for thread in seen["threads"] if thread.is_alive()]
    check(not alive,
          f"on {label}, {len(alive)} pool threads were still running after server_close(): "
          f"shut the pool down there (and call super().server_close()).")


def check_pool_mixin(mixin):
    """Check a mix-in that runs each request on a pool of ``max_workers`` threads.

    The check combines it with TCPServer of both implementations (mix-in
    first), with max_workers 2 and then 3, and expects: exactly max_workers
    handlers at once, every client answered and its connection ended, the
    one failing handler's error in handle_error(), and no pool thread left
    once server_close() has returned.
    """
    require_filled_in(mixin, "PoolMixIn")
    check(isinstance(mixin, type),
          f"pass the class itself, not {type(mixin).__name__!r} (no parentheses after it).")
    check(not issubclass(mixin, (sockserv.BaseServer, socketserver.BaseServer)),
          f"{mixin.__name__} must be a mix-in (a plain class), not a server: the check puts it "
          f"in front of TCPServer itself.")
    check(callable(getattr(mixin, "process_request", None)),
          f"{mixin.__name__} must define process_request().")
    for label, impl in IMPLEMENTATIONS.items():
        for workers in (2, 3):
            _judge_pool(label, workers, _pool_run(mixin, impl, workers))
    passed("max_workers handlers at once, every client answered, errors reported, "
           "and the pool shut down by server_close(), on both implementations.")


# -- exercise 2: a server that stops when it has been idle ---------------------------


class _SeenFromLoop(Exception):
    """Raised in the serving thread instead of a call that would deadlock there."""


def _watched(server_class):
    """The learner's class, with shutdown()/server_close() from the loop's thread seen, not run."""

    class Watched(server_class):
        def serve_forever(self, *args, **kwargs):
            self.check_loop_thread = threading.get_ident()
            return super().serve_forever(*args, **kwargs)

        def shutdown(self):
            if threading.get_ident() == getattr(self, "check_loop_thread", None):
                raise _SeenFromLoop("shutdown")
            super().shutdown()

        def server_close(self):
            if threading.get_ident() == getattr(self, "check_loop_thread", None):
                raise _SeenFromLoop("server_close")
            super().server_close()

    return _disguised(Watched, server_class)


class _Echo(sockserv.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def _idle_run(server_class, idle_timeout):
    """Send requests for 2.5 idle timeouts (10 at least), then go quiet; return what happened."""
    watched = _watched(server_class)
    watched.idle_timeout = idle_timeout
    try:
        server = watched(LOCALHOST, _Echo)
    except Exception as error:
        raise ExerciseFailed(f"creating a {server_class.__name__} raised "
                             f"{describe_error(error)}.") from None
    outcome = {}

    def serve():
        try:
            server.serve_forever(IDLE_CHECK_POLL_INTERVAL)
        except _SeenFromLoop as seen:
            outcome["from_loop"] = str(seen)
        except Exception as error:
            outcome["error"] = error
        # When the loop stopped, as its own thread saw it: the checking thread may
        # notice much later on a busy machine.
        outcome["returned_at"] = time.monotonic()

    loop = threading.Thread(target=serve, name="check_idle_server", daemon=True)
    loop.start()
    happened = {"served": 0, "largest_gap": 0.0}
    last_reply = time.monotonic()
    try:
        started = time.monotonic()
        # Busy for 2.5 idle timeouts and at least 10 requests (a loaded machine may serve fewer
        # in that time), within a bound.
        while (time.monotonic() - started < 2.5 * idle_timeout or happened["served"] < 10) \
                and time.monotonic() - started < 10 * idle_timeout:
            if not loop.is_alive():
                break
            try:
                # A loop that has stopped leaves the connection queued, unanswered:
                # a short bound (a loopback echo takes milliseconds) keeps the check quick.
                reply = talk(server.server_address, b"ping\n", timeout=max(1.0, 2 * idle_timeout))
            except OSError:
                break
            if reply != b"ping\n":
                break
            happened["served"] += 1
            # The time between two replies, as this client saw it: on a busy machine this
            # thread may not run for longer than idle_timeout, and the server is then right
            # to stop.
            happened["largest_gap"] = max(happened["largest_gap"], time.monotonic() - last_reply)
            last_reply = time.monotonic()  # the server noted its last request before this
            time.sleep(idle_timeout / 10)
        happened["alive_while_busy"] = loop.is_alive()
        loop.join(idle_timeout + STOP_TIMEOUT)
        happened["stopped"] = not loop.is_alive()
        happened["quiet_for"] = outcome.get("returned_at", time.monotonic()) - last_reply
        if loop.is_alive():
            server.shutdown()
            loop.join(STOP_TIMEOUT)
    finally:
        server.server_close()
    happened.update(outcome)
    return happened


def check_idle_server(server_class):
    """Check a TCPServer whose serve_forever() returns after idle_timeout quiet seconds.

    Requests come every tenth of idle_timeout (set to 0.4 s, then 0.6 s, on
    subclasses) for 2.5 idle timeouts: the loop must keep serving; then no
    request comes, and serve_forever() must return on its own, not sooner than
    idle_timeout after the last one (the loop turns every
    IDLE_CHECK_POLL_INTERVAL, so turns counted as time run out long before).  A call to
    shutdown() or server_close() from the serving thread is reported
    instead of deadlocking.
    """
    require_filled_in(server_class, "IdleServer")
    check(isinstance(server_class, type),
          f"pass the class IdleServer itself, not {type(server_class).__name__!r}.")
    check(issubclass(server_class, sockserv.TCPServer),
          f"{server_class.__name__} must be a subclass of sockserv.TCPServer.")
    name = server_class.__name__
    for idle_timeout in (0.4, 0.6):
        for _ in range(BUSY_RETRIES):
            happened = _idle_run(server_class, idle_timeout)
            # Stopped while "busy", but this check's own requests came too far apart (the
            # machine did not run it in time): the server may have been right; run again.
            if happened["alive_while_busy"] or happened["largest_gap"] < 0.75 * idle_timeout:
                break
        else:
            raise ExerciseFailed(
                f"this computer was too busy to check {name}: the check's requests, meant "
                f"to come every {idle_timeout / 10:g} s, came up to "
                f"{happened['largest_gap']:.2f} s apart in {BUSY_RETRIES} tries; run it again.")
        if "from_loop" in happened:
            raise ExerciseFailed(
                f"{happened['from_loop']}() was called from service_actions(), in the thread "
                f"that runs serve_forever(), where it would wait for itself (a deadlock): "
                f"start another thread to call shutdown().")
        if "error" in happened:
            raise ExerciseFailed(f"serve_forever() of {name} stopped with "
                                 f"{describe_error(happened['error'])}.")
        check(happened["alive_while_busy"] and happened["served"] >= 10,
              f"{name} stopped after {happened['served']} requests while a request came every "
              f"{idle_timeout / 10:g} s (idle_timeout = {idle_timeout:g}): count the quiet time "
              f"from the last request, not from the start.")
        check(happened["stopped"],
              f"serve_forever() of {name} did not return within {idle_timeout + STOP_TIMEOUT:g} s "
              f"of quiet (idle_timeout = {idle_timeout:g}): serve_forever() calls "
              f"service_actions() once per turn (not handle_timeout()), check the quiet time there.")
        # 0.75: the server noted its last request a little before the client had the reply.
        check(happened["quiet_for"] >= idle_timeout * 0.75,
              f"serve_forever() of {name} returned {happened['quiet_for']:.2f} s after the last "
              f"request, before idle_timeout ({idle_timeout:g} s).")
    passed("serve_forever() kept serving while requests came, and returned on its own "
           "after idle_timeout quiet seconds (0.4 s and 0.6 s), without a deadlock.")
