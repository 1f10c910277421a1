"""Checks for lesson 03's exercises: the handler lifecycle.

Each check runs the learner's class on real servers bound to 127.0.0.1,
port 0, talks to them as a client would, and then either prints one
"Check passed" line or raises ``ExerciseFailed`` with one sentence saying
what the client saw and what was expected.

Each check builds the scenario that makes a lifecycle mistake visible,
because the easy scenario lets most wrong answers through:

* ``check_greeter``: a handler must greet from setup() and say goodbye from
  finish().  Besides the plain exchange, the check runs a copy whose
  handle() raises (only then does it show whether the goodbye really lives
  in finish()) and a copy with a buffered ``wfile`` (only then does a
  goodbye written *after* ``super().finish()`` fail: the stdlib's
  unbuffered wfile quietly accepts writes after it is closed); and it
  looks whether finish() left ``wfile`` open (``super().finish()`` forgotten).
* ``check_limited_server``: verify_request() must refuse every connection
  after the first ``limit``.  The check records what verify_request()
  returned, so refusing some other way does not pass; and it runs two
  servers of the class at once, connections taken in turn, because a count
  kept on the class (or in a global) is shared by every server and shows
  only then.
* ``check_patient_server``: a loop of handle_request() calls must stop at
  the first timeout and count only real requests; the check calls it three
  times, with 3, 0 and 2 clients waiting, because a flag that is never
  reset shows only on a later call.

A wrong answer must fail fast, never hang the notebook or leave a server
running: clients, serving and runs come from ``sockserv.teach.harness`` and
are bounded (``CLIENT_TIMEOUT``, ``STOP_TIMEOUT``); the learner's
verify_request() is called through a wrapper that catches what it raises
(the server itself would let it end the serving loop); a handle() that
never returns is reported once the bounded stop gives up; and a
serve_until_quiet() that never stops is ended by closing its server.
"""

import contextlib
import socket

import sockserv

from .checks import ExerciseFailed, check, describe_error, passed, require_filled_in
from .harness import (CLIENT_TIMEOUT, IMPLEMENTATIONS, LOCALHOST, POLL_INTERVAL,
                      STOP_TIMEOUT, TimedOut, connect, read_all, recording_errors,
                      run_bounded, serving, talk)

__all__ = ["ExerciseFailed", "check_greeter", "check_limited_server",
           "check_patient_server"]


# -- what every check shares ---------------------------------------------------


def _disguised(wrapper, original):
    """Give wrapper the learner's class name, so error messages name their class."""
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    return wrapper


def _exchange(address, data, who):
    """talk() to address, turning what can go wrong into one sentence about who."""
    try:
        return talk(address, data, timeout=CLIENT_TIMEOUT)
    except TimeoutError:
        raise ExerciseFailed(f"{who} got no reply and was not closed within "
                             f"{CLIENT_TIMEOUT:g} s.") from None
    except OSError as error:
        raise ExerciseFailed(f"{who} failed with {type(error).__name__}: the "
                             f"server dropped the connection instead of "
                             f"closing it.") from None


@contextlib.contextmanager
def _serving_bounded(server, stuck_sentence):
    """harness.serving() with STOP_TIMEOUT; a stop that times out fails the check.

    The TimedOut is kept as the failure's __cause__, so a test that releases
    the stuck handler can join the thread that is still stopping the server.
    """
    try:
        with serving(server, POLL_INTERVAL, stop_timeout=STOP_TIMEOUT):
            yield server
    except TimedOut as timed_out:
        raise ExerciseFailed(stuck_sentence) from timed_out


# -- exercise 1: a greeting from setup(), a goodbye from finish() ----------------

GREETING = b"hello\n"
GOODBYE = b"bye\n"
#: wbufsize of the buffered copy of the learner's handler (a fixed number,
#: because the exercise text names it).
BUFFERED = 8192


def _handler_error_sentence(error, scenario):
    text = describe_error(error)
    if isinstance(error, AttributeError) and ("wfile" in text or "rfile" in text):
        return (f"{scenario}, the handler raised {text}: setup() must call "
                f"super().setup(), which creates rfile and wfile, before using them.")
    if isinstance(error, ValueError) and "closed file" in text:
        return (f"{scenario}, the handler raised {text}: write the goodbye before "
                f"calling super().finish(), which flushes and closes wfile.")
    return f"{scenario}, the handler raised {text}."


def _run_greeter(server_class, handler_class, data, scenario):
    """Serve one exchange; return (reply, handler errors, files finish() left open)."""
    left_open = []

    class Watched(handler_class):
        def finish(self):
            try:
                super().finish()
            finally:
                wfile = getattr(self, "wfile", None)
                if wfile is not None and not wfile.closed:
                    left_open.append(True)
                    with contextlib.suppress(OSError, ValueError):
                        wfile.close()  # so that nothing is left behind by the check

    _disguised(Watched, handler_class)
    client_failure = None
    with server_class(LOCALHOST, Watched) as server:
        with _serving_bounded(server, f"{scenario}, the handler was still running "
                                      f"{STOP_TIMEOUT:g} s after the client gave up: "
                                      f"handle() must return."):
            try:
                reply = _exchange(server.server_address, data, "the client")
            except ExerciseFailed as failure:
                # A handler that fails before reading makes the server close a
                # connection with unread data, which can reset it: the
                # handler's own error is the cause worth reporting.
                client_failure, reply = failure, None
    errors = [error for _, error in server.errors]
    if client_failure is not None and not errors:
        raise client_failure
    return reply, errors, bool(left_open)


def check_greeter(handler_class):
    """Check a stream handler that greets in setup() and says goodbye in finish().

    A client sending b"abc\\n" must receive b"hello\\n", b"ABC\\n" and
    b"bye\\n", also when the handler's wfile is buffered; when handle()
    raises, the client must still receive the greeting and the goodbye;
    finish() must leave wfile closed (super().finish() called).  Runs on
    both implementations' TCPServer.
    """
    require_filled_in(handler_class)

    class HandleFails(handler_class):
        def handle(self):
            raise RuntimeError("handle() failed on purpose")

    class Buffered(handler_class):
        wbufsize = BUFFERED

    _disguised(HandleFails, handler_class)
    _disguised(Buffered, handler_class)

    expected = GREETING + b"ABC\n" + GOODBYE
    for label, impl in IMPLEMENTATIONS.items():
        server_class = recording_errors(impl.TCPServer)

        scenario = "for b'abc\\n'"
        reply, errors, left_open = _run_greeter(server_class, handler_class,
                                                b"abc\n", scenario)
        if errors:
            raise ExerciseFailed(_handler_error_sentence(errors[0], scenario))
        check(reply == expected,
              f"for b'abc\\n' the client received {reply!r}, expected {expected!r}.")
        check(not left_open,
              "finish() left wfile open: call super().finish() at its end, which "
              "flushes and closes wfile.")

        scenario = f"with a buffered wfile (wbufsize = {BUFFERED})"
        reply, errors, _ = _run_greeter(server_class, Buffered, b"abc\n", scenario)
        if errors:
            raise ExerciseFailed(_handler_error_sentence(errors[0], scenario))
        check(reply == expected,
              f"{scenario} the client received {reply!r}, expected {expected!r}: "
              f"whatever is written after super().finish() is lost.")

        scenario = "when handle() raised"
        reply, errors, _ = _run_greeter(server_class, HandleFails, b"", scenario)
        others = [error for error in errors if not isinstance(error, RuntimeError)]
        if others:
            raise ExerciseFailed(
                f"after handle() raised, the handler also raised {describe_error(others[0])} "
                f"(finish() runs after a failed handle() too, and must still work).")
        check(reply is not None and reply.startswith(GREETING),
              f"when handle() raised, the client received {reply!r}, without "
              f"the greeting: send {GREETING!r} from setup(), which runs before "
              f"handle().")
        check(reply.endswith(GOODBYE),
              f"when handle() raised, the client received {reply!r}, without "
              f"the goodbye: send {GOODBYE!r} from finish(), which runs even "
              f"when handle() fails.")
    passed("greeting from setup(), goodbye from finish() before super().finish(), "
           "even when handle() raises, on socketserver and sockserv.")


# -- exercise 2: refuse connections in verify_request() --------------------------


def _watched_server(server_class, raised):
    """A subclass recording each verify_request() verdict in self.verdicts."""

    class Watched(server_class):
        def verify_request(self, request, client_address):
            try:
                verdict = super().verify_request(request, client_address)
            except Exception as error:
                raised.append(error)
                return False  # refused, so the server still closes the connection
            self.verdicts.append(bool(verdict))
            return verdict

    return _disguised(Watched, server_class)


def _replying_handler(served):
    class Reply(sockserv.StreamRequestHandler):
        def handle(self):
            served.append(self.server)
            self.wfile.write(b"served\n")

    return Reply


def _limited_run(server_class, servers, rounds):
    """Connect to `servers` new servers in turn, `rounds` times; return (servers, replies).

    replies[i] lists what each connection to server i received.
    """
    raised, served = [], []
    watched = _watched_server(server_class, raised)
    handler = _replying_handler(served)
    with contextlib.ExitStack() as stack:
        running = []
        for _ in range(servers):
            try:
                server = watched(LOCALHOST, handler)
            except Exception as error:
                raise ExerciseFailed(f"creating a {server_class.__name__} raised "
                                     f"{describe_error(error)}.") from None
            server.verdicts = []
            stack.enter_context(server)
            stack.enter_context(_serving_bounded(
                server, f"{server_class.__name__} did not stop within "
                        f"{STOP_TIMEOUT:g} s: verify_request() must return."))
            running.append(server)
        replies = [[] for _ in running]
        for number in range(1, rounds + 1):
            for which, server in enumerate(running):
                who = f"connection {number}" + (f" to server {which + 1}" if servers > 1 else "")
                replies[which].append(_exchange(server.server_address, b"", who))
                if raised:
                    raise ExerciseFailed(f"on {who}, verify_request() raised "
                                         f"{describe_error(raised[0])}.")
    return running, replies, served


def check_limited_server(server_class):
    """Check a TCP server that serves its first `limit` connections and refuses the rest.

    The check makes limit + 2 connections to one new server, one after
    another; then it runs two new servers at once and connects to them in
    turn.  Each connection that is served gets b"served\\n" from the check's
    own handler; each one that is refused is closed with no reply; and
    verify_request() must be what decided, for each server on its own.
    """
    require_filled_in(server_class)
    limit = getattr(server_class, "limit", None)
    check(isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1,
          f"{server_class.__name__} needs a class attribute limit, the whole "
          f"number of connections to serve (2 in the exercise).")
    total = limit + 2
    expected = [True] * limit + [False] * 2

    (server,), (replies,), served = _limited_run(server_class, 1, total)
    if server.verdicts != expected and not any(server.verdicts):
        raise ExerciseFailed(
            f"verify_request() of a new {server_class.__name__} returned "
            f"{server.verdicts} for {total} connections, expected {expected}: the "
            f"count must start at 0 for every new server (keep it on self, not "
            f"on the class or in a global).")
    check(server.verdicts == expected,
          f"verify_request() returned {server.verdicts} for {total} connections "
          f"in a row, expected {expected}.")
    for number, reply in enumerate(replies, 1):
        wanted = b"served\n" if number <= limit else b""
        check(reply == wanted,
              f"connection {number} received {reply!r}, expected {wanted!r}.")
    check(len(served) == limit,
          f"the handler ran {len(served)} times for {limit} accepted connections.")

    pair, _, _ = _limited_run(server_class, 2, total)
    for which, server in enumerate(pair, 1):
        check(server.verdicts == expected,
              f"with two {server_class.__name__} servers running at once, "
              f"connections made in turn, server {which}'s verify_request() "
              f"returned {server.verdicts}, expected {expected}: each server needs "
              f"its own count (on self; a count on the class is shared by every "
              f"server).")
    passed(f"the first {limit} connections were served and the next 2 were "
           f"refused by verify_request(), for each server on its own.")


# -- exercise 3: handle requests one by one until nobody comes ------------------


def _clients_waiting(address, count):
    """Open count connections that each send one line and EOF; the server has not accepted them."""
    clients = []
    try:
        for number in range(1, count + 1):
            sock = connect(address, timeout=CLIENT_TIMEOUT)
            clients.append(sock)
            sock.sendall(b"%d\n" % number)
            sock.shutdown(socket.SHUT_WR)
    except BaseException:
        for sock in clients:
            sock.close()
        raise
    return clients


def _read_reply(sock, who):
    try:
        return read_all(sock)
    except OSError as error:
        raise ExerciseFailed(f"{who} got no reply and was not closed "
                             f"({type(error).__name__}).") from None


def _serve_until_quiet_bounded(server):
    """server.serve_until_quiet() within STOP_TIMEOUT, or a sentence saying why not."""
    try:
        return run_bounded(server.serve_until_quiet, timeout=STOP_TIMEOUT,
                           what="serve_until_quiet()")
    except TimedOut as timed_out:
        # Closing the socket makes the learner's next handle_request() fail,
        # which ends a loop that would otherwise never stop.
        server.server_close()
        timed_out.thread.join(STOP_TIMEOUT)
        raise ExerciseFailed(
            f"serve_until_quiet() was still running {STOP_TIMEOUT:g} s after it "
            f"started: stop the loop as soon as handle_timeout() has been "
            f"called.") from timed_out
    except Exception as error:  # the learner's code raised: say what, in one sentence
        raise ExerciseFailed(f"serve_until_quiet() raised {describe_error(error)}.") from None


def check_patient_server(server_class):
    """Check a TCP server whose serve_until_quiet() handles requests until a timeout.

    serve_until_quiet() must call handle_request() again and again until one
    call times out (handle_timeout() is called), and return the number of
    requests it handled.  The check queues clients before each call: 3, then
    none, then 2, so a flag left over from an earlier call shows up.
    """
    require_filled_in(server_class)
    timeout = getattr(server_class, "timeout", None)
    check(isinstance(timeout, (int, float)) and 0 < timeout <= 1,
          f"{server_class.__name__}.timeout is {timeout!r}: set it to a short "
          f"wait in seconds (0.2 in the exercise), or handle_request() waits "
          f"for ever.")
    check(callable(getattr(server_class, "serve_until_quiet", None)),
          f"{server_class.__name__} has no method serve_until_quiet().")

    class Reply(sockserv.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"served " + self.rfile.readline())

    with server_class(LOCALHOST, Reply) as server:
        for call, waiting in enumerate((3, 0, 2), 1):
            clients = _clients_waiting(server.server_address, waiting)
            with contextlib.ExitStack() as closing:
                for sock in clients:
                    closing.enter_context(sock)
                handled = _serve_until_quiet_bounded(server)
                if handled != waiting:
                    hint = ""
                    if handled == waiting + 1:
                        hint = " (a timeout is not a request)"
                    elif handled == 0 and call > 1:
                        hint = " (is a flag from the call before still set?)"
                    raise ExerciseFailed(
                        f"call {call} of serve_until_quiet() returned {handled!r} "
                        f"with {waiting} clients waiting, expected {waiting}{hint}.")
                for number, sock in enumerate(clients, 1):
                    reply = _read_reply(sock, f"client {number} of call {call}")
                    expected = b"served %d\n" % number
                    check(reply == expected,
                          f"client {number} of call {call} received {reply!r}, "
                          f"expected {expected!r}.")
    passed("serve_until_quiet() handled every waiting client, then stopped at "
           "the first timeout, call after call.")
