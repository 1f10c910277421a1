"""Checks for lesson 03's exercises: the handler lifecycle.

Each check runs the learner's class on real servers bound to 127.0.0.1,
port 0, talks to them as a client would, and then either prints one
"Check passed" line or raises ``ExerciseFailed`` with one sentence saying
what the client saw and what was expected.

Each check builds the scenario that makes its lifecycle mistake visible:

* ``check_greeter``: a handler must greet from setup() and say goodbye from
  finish(); the check also runs it with a handle() that raises, because
  only then does it show whether the goodbye really lives in finish();
* ``check_limited_server``: verify_request() must refuse every connection
  after the first ``limit``; the check records what verify_request()
  returned, so refusing some other way does not pass;
* ``check_patient_server``: a loop of handle_request() calls must stop at
  the first timeout and count only real requests; the check calls it three
  times, with 3, 0 and 2 clients waiting, because a flag that is never
  reset shows only on a later call.

A wrong answer must fail fast, not hang or break the server: every client
socket has a timeout; the learner's verify_request() is called through a
wrapper that catches what it raises (the server itself would let it end the
serving loop, leaving the client waiting); the serving loop is stopped with
a bound, so a handle() that never returns is reported instead of blocking
the notebook; and a serve_until_quiet() that never stops is ended by
closing its server.
"""

import contextlib
import socket
import socketserver
import sys
import threading

import sockserv

from .checks import ExerciseFailed, check, passed

__all__ = ["ExerciseFailed", "check_greeter", "check_limited_server",
           "check_patient_server"]

IMPLEMENTATIONS = (socketserver, sockserv)
LOCALHOST = ("127.0.0.1", 0)
#: Seconds a client, or the stopping of a server, may take before the check fails.
TIMEOUT = 3.0
POLL_INTERVAL = 0.05


# -- the client and the serving loop the checks share ----------------------------


def _exchange(address, data, who):
    """Send data, signal EOF, and return all the server sends until it closes.

    who names the client in a failure sentence ("connection 3").
    """
    try:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            sock.sendall(data)
            # A handler may read until EOF: tell it nothing more is coming.
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except TimeoutError:
        raise ExerciseFailed(f"{who} got no reply and was not closed within "
                             f"{TIMEOUT:g} s.") from None
    except OSError as error:
        raise ExerciseFailed(f"{who} failed with {type(error).__name__}: the "
                             f"server dropped the connection instead of "
                             f"closing it.") from None
    return b"".join(chunks)


@contextlib.contextmanager
def _serving(server):
    """serve_forever() in a thread for the block; then stop, join and close, bounded.

    Like sockserv.teach.serving, except that a handler stuck in handle()
    makes the check fail after TIMEOUT seconds instead of hanging: the
    threads are daemons so that, in that case, they cannot keep Python
    from exiting.
    """
    loop = threading.Thread(target=server.serve_forever,
                            args=(POLL_INTERVAL,), daemon=True)
    loop.start()
    try:
        yield server
    finally:
        # shutdown() waits for the request in progress; wait for it with a bound.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(TIMEOUT)
        loop.join(TIMEOUT)
        server.server_close()
        if loop.is_alive():
            raise ExerciseFailed(f"the server could not stop because a "
                                 f"handler was still running after "
                                 f"{TIMEOUT:g} s: handle() must return.")


def _recording_errors(server_class):
    """A subclass of server_class whose handle_error() notes errors quietly."""

    class RecordingErrors(server_class):
        def __init__(self, *args, **kwargs):
            self.handler_errors = []
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            self.handler_errors.append(_describe(sys.exc_info()[1]))

    return RecordingErrors


def _disguised(wrapper, original):
    """Give wrapper the learner's class name, so error messages name their class."""
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    return wrapper


def _describe(error):
    """'ValueError: what it said', without a final period (it ends inside a sentence)."""
    return f"{type(error).__name__}: {str(error).rstrip('.')}"


# -- exercise 1: a greeting from setup(), a goodbye from finish() ----------------

GREETING = b"hello\n"
GOODBYE = b"bye\n"


def check_greeter(handler_class):
    """Check a stream handler that greets in setup() and says goodbye in finish().

    A client sending b"abc\\n" must receive b"hello\\n", b"ABC\\n" and
    b"bye\\n"; when handle() raises, the client must still receive the
    greeting and the goodbye.  Runs on both implementations' TCPServer.
    """

    class HandleFails(handler_class):
        def handle(self):
            raise RuntimeError("handle() failed on purpose")

    _disguised(HandleFails, handler_class)

    expected = GREETING + b"ABC\n" + GOODBYE
    for impl in IMPLEMENTATIONS:
        server_class = _recording_errors(impl.TCPServer)

        client_failure = None
        with server_class(LOCALHOST, handler_class) as server:
            with _serving(server):
                try:
                    reply = _exchange(server.server_address, b"abc\n", "the client")
                except ExerciseFailed as failure:
                    # A handler that fails before reading makes the server close
                    # a connection with unread data, which resets it: the
                    # handler's error is the cause worth reporting.
                    client_failure = failure
        if server.handler_errors:
            raise ExerciseFailed(_handler_error_sentence(server.handler_errors[0]))
        if client_failure is not None:
            raise client_failure
        check(reply == expected,
              f"for b'abc\\n' the client received {reply!r}, expected {expected!r}.")

        with server_class(LOCALHOST, HandleFails) as server:
            with _serving(server):
                reply = _exchange(server.server_address, b"", "the client")
        others = [error for error in server.handler_errors
                  if not error.startswith("RuntimeError: handle() failed")]
        if others:
            raise ExerciseFailed(
                f"after handle() raised, the handler also raised {others[0]} "
                f"(finish() runs after a failed handle() too, and must still work).")
        check(reply.startswith(GREETING),
              f"when handle() raised, the client received {reply!r}, without "
              f"the greeting: send {GREETING!r} from setup(), which runs before "
              f"handle().")
        check(reply.endswith(GOODBYE),
              f"when handle() raised, the client received {reply!r}, without "
              f"the goodbye: send {GOODBYE!r} from finish(), which runs even "
              f"when handle() fails.")
    passed("greeting from setup(), goodbye from finish(), even when handle() "
           "raises, on socketserver and sockserv.")


def _handler_error_sentence(error):
    if error.startswith("AttributeError") and ("wfile" in error or "rfile" in error):
        return (f"the handler raised {error}: setup() must call "
                f"super().setup(), which creates wfile and rfile, before using them.")
    return f"the handler raised {error}."


# -- exercise 2: refuse connections in verify_request() --------------------------


def check_limited_server(server_class):
    """Check a TCP server that serves its first `limit` connections and refuses the rest.

    The check makes limit + 2 connections, one after another.  Each one
    that is served gets b"served\\n" from the check's own handler; each one
    that is refused is closed with no reply; and verify_request() must be
    what decided.
    """
    limit = getattr(server_class, "limit", None)
    check(isinstance(limit, int) and limit >= 1,
          f"{server_class.__name__} needs a class attribute limit, the whole "
          f"number of connections to serve (2 in the exercise).")
    served = []
    verdicts = []
    raised = []

    class Reply(sockserv.StreamRequestHandler):
        def handle(self):
            served.append(self)
            self.wfile.write(b"served\n")

    class Watched(server_class):
        def verify_request(self, request, client_address):
            try:
                verdict = super().verify_request(request, client_address)
            except Exception as error:
                raised.append(error)
                return False  # refused, so the server still closes the connection
            verdicts.append(bool(verdict))
            return verdict

    _disguised(Watched, server_class)

    total = limit + 2
    expected_verdicts = [True] * limit + [False] * 2
    replies = []
    with Watched(LOCALHOST, Reply) as server:
        with _serving(server):
            for number in range(1, total + 1):
                replies.append(_exchange(server.server_address, b"",
                                         f"connection {number}"))
                if raised:
                    break
    if raised:
        raise ExerciseFailed(f"on connection {len(replies)}, verify_request() "
                             f"raised {_describe(raised[0])}.")
    check(verdicts == expected_verdicts,
          f"verify_request() returned {verdicts} for {total} connections in a "
          f"row, expected {expected_verdicts}.")
    for number, reply in enumerate(replies, 1):
        expected = b"served\n" if number <= limit else b""
        check(reply == expected,
              f"connection {number} received {reply!r}, expected {expected!r}.")
    check(len(served) == limit,
          f"the handler ran {len(served)} times for {limit} accepted connections.")
    passed(f"the first {limit} connections were served and the next 2 were "
           f"refused by verify_request().")


# -- exercise 3: handle requests one by one until nobody comes ------------------


def _clients_waiting(address, count):
    """Open count connections that each send one line and EOF; the server has not accepted them."""
    clients = []
    try:
        for number in range(1, count + 1):
            sock = socket.create_connection(address, timeout=TIMEOUT)
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
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except OSError as error:
        raise ExerciseFailed(f"{who} got no reply and was not closed "
                             f"({type(error).__name__}).") from None
    return b"".join(chunks)


def _run_bounded(method, server):
    """Call method() in a thread; return its result, or explain why there is none."""
    outcome = []

    def run():
        try:
            outcome.append(("returned", method()))
        except Exception as error:  # reported by the check, in one sentence
            outcome.append(("raised", error))

    worker = threading.Thread(target=run, name="lesson03 check", daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        # Closing the socket makes the learner's next handle_request() fail,
        # which ends a loop that would otherwise never stop.
        server.server_close()
        worker.join(TIMEOUT)
        raise ExerciseFailed(
            f"serve_until_quiet() was still running {TIMEOUT:g} s after it "
            f"started: stop the loop as soon as handle_timeout() has been called.")
    kind, value = outcome[0]
    if kind == "raised":
        raise ExerciseFailed(f"serve_until_quiet() raised {_describe(value)}.")
    return value


def check_patient_server(server_class):
    """Check a TCP server whose serve_until_quiet() handles requests until a timeout.

    serve_until_quiet() must call handle_request() again and again until one
    call times out (handle_timeout() is called), and return the number of
    requests it handled.  The check queues clients before each call: 3, then
    none, then 2, so a flag left over from an earlier call shows up.
    """
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
                handled = _run_bounded(server.serve_until_quiet, server)
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
