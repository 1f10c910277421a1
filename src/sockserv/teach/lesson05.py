"""Checks for lesson 05's exercises: stopping cleanly, and errors.

Each check runs the learner's server class on real servers bound to
127.0.0.1, port 0, with a handler of its own, and then either prints one
"Check passed" line or raises ``ExerciseFailed`` with one sentence.

Each check builds the scenario that makes the mistake visible:

* ``check_countdown_server``: serve_forever() must return on its own after
  ``limit`` requests, without deadlocking.  The check wraps the learner's
  class so that a shutdown() (or server_close()) called from the serving
  thread is *seen* instead of performed: the real call would wait for ever,
  and a deadlocked thread cannot be released.  The check then stops the loop
  itself, from another thread, and says what happened.  It connects one
  client at a time, so a loop that stops early, late (one request after the
  limit) or never is told apart, and it runs a copy with ``limit = 1``,
  because a hard-coded 3 passes the first run.
* ``check_counting_server``: handle_error() must count per server, log one
  line at ERROR or above, and write nothing to stderr.  Two servers run side
  by side (a count on the class shows only then); the logger's records and
  stderr are captured for the length of the check.
* ``check_restartable_server``: a new server must bind the port of one that
  has just closed while the server's side of its connections is in
  TIME_WAIT (the clients wait for the server to close first), and a third
  server must still be refused while the second listens, which is what
  tells allow_reuse_address from allow_reuse_port.

A wrong answer fails fast, never hangs the notebook and leaves nothing
running: clients, serving and bounded runs come from
``sockserv.teach.harness``.
"""

import contextlib
import errno
import io
import logging
import socket
import socketserver
import threading

import sockserv

from .checks import ExerciseFailed, check, describe_error, passed, preview, require_filled_in
from .harness import (CLIENT_TIMEOUT, LOCALHOST, POLL_INTERVAL, STOP_TIMEOUT, TimedOut,
                      run_bounded, serving, talk)

__all__ = ["ExerciseFailed", "ERROR_LOGGER", "check_countdown_server",
           "check_counting_server", "check_restartable_server"]

#: The logger exercise 2's handle_error() logs to.
ERROR_LOGGER = "lesson05.errors"


# -- what every check shares ---------------------------------------------------


def _disguised(wrapper, original):
    """Give wrapper the learner's class name, so error messages name their class."""
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    return wrapper


def _require_server_class(answer, name):
    """Fail with a sentence unless answer is a TCPServer class (socketserver's or sockserv's)."""
    require_filled_in(answer, name)
    check(isinstance(answer, type),
          f"pass the class {name} itself, not {type(answer).__name__!r} (no parentheses after it).")
    check(issubclass(answer, (socketserver.TCPServer, sockserv.TCPServer)),
          f"{name} must be a subclass of socketserver.TCPServer (or of sockserv.TCPServer).")


def _handlers_of(server_class):
    """The handlers module that matches the learner's server: sockserv or socketserver."""
    return sockserv if issubclass(server_class, sockserv.BaseServer) else socketserver


def _create(server_class, address, handler_class):
    """Construct the learner's server; an error becomes one sentence."""
    try:
        return server_class(address, handler_class)
    except OSError:
        raise  # the caller decides what a failed bind means
    except Exception as error:
        raise ExerciseFailed(f"creating a {server_class.__name__} raised "
                             f"{describe_error(error)}.") from None


# -- exercise 1: a server that stops itself after `limit` requests ---------------


def _watched_countdown(server_class):
    """A subclass that notices shutdown()/server_close() called from the serving thread.

    ``misuse`` lists the names of such calls.  Instead of shutdown() the
    wrapper stops the loop from a helper thread (in ``helpers``), so that
    nothing deadlocks; instead of server_close() it does nothing (the check
    closes the server at the end).
    """

    class Watched(server_class):
        def __init__(self, *args, **kwargs):
            self.misuse, self.helpers = [], []
            self.__serving = None
            super().__init__(*args, **kwargs)

        def serve_forever(self, *args, **kwargs):
            self.__serving = threading.get_ident()
            try:
                return super().serve_forever(*args, **kwargs)
            finally:
                self.__serving = None

        def shutdown(self):
            if threading.get_ident() == self.__serving:
                # The real call would wait for the loop it is called from.
                self.misuse.append("shutdown")
                helper = threading.Thread(target=super().shutdown, daemon=True)
                self.helpers.append(helper)
                helper.start()
                return
            super().shutdown()

        def server_close(self):
            if threading.get_ident() == self.__serving:
                self.misuse.append("server_close")
                return
            super().server_close()

    return _disguised(Watched, server_class)


_MISUSE = {
    "shutdown": ("shutdown() was called from the thread that runs serve_forever(): it "
                 "waits for the loop to end while the loop waits for it, a deadlock, so "
                 "call it from another thread (threading.Thread(target=self.shutdown)"
                 ".start())."),
    "server_close": ("server_close() was called from inside serve_forever(): it closes the "
                     "socket but does not stop the loop, so call shutdown() from another "
                     "thread instead."),
}


def _countdown_run(server_class, limit):
    """Serve one client at a time on a watched copy of server_class; fail with a sentence."""
    name = server_class.__name__
    handlers = _handlers_of(server_class)
    served = []

    class Reply(handlers.StreamRequestHandler):
        def handle(self):
            served.append(self.rfile.readline())
            self.wfile.write(b"ok\n")

    watched = _watched_countdown(server_class)
    outcome = {}
    with _create(watched, LOCALHOST, Reply) as server:

        def serve():
            try:
                server.serve_forever(POLL_INTERVAL)
            except BaseException as error:  # reported as a sentence below
                outcome["error"] = error

        loop = threading.Thread(target=serve, name="countdown serve_forever", daemon=True)
        loop.start()
        try:
            _countdown_clients(server, loop, limit, name, served, outcome)
        finally:
            _stop_quietly(server, loop)


def _misuse_sentence(server):
    return _MISUSE[server.misuse[0]] if server.misuse else None


def _countdown_clients(server, loop, limit, name, served, outcome):
    """The check's clients, one at a time, and what their replies say about the loop."""
    def ended_early(number):
        sentence = _misuse_sentence(server)
        if sentence:
            raise ExerciseFailed(sentence)
        if "error" in outcome:
            raise ExerciseFailed(f"serve_forever() raised {describe_error(outcome['error'])} "
                                 f"after {len(served)} requests.")
        raise ExerciseFailed(f"with limit = {limit}, serve_forever() returned after "
                             f"{len(served)} requests, before request {number}.")

    for number in range(1, limit + 1):
        if not loop.is_alive():
            ended_early(number)
        try:
            reply = talk(server.server_address, b"request %d\n" % number, timeout=CLIENT_TIMEOUT)
        except OSError:
            loop.join(POLL_INTERVAL * 4)
            if not loop.is_alive() or server.misuse:
                ended_early(number)
            raise ExerciseFailed(f"request {number} got no reply within "
                                 f"{CLIENT_TIMEOUT:g} s.") from None
        sentence = _misuse_sentence(server)
        if sentence:
            raise ExerciseFailed(sentence)
        check(reply == b"ok\n", f"request {number} received {reply!r}, expected b'ok\\n'.")

    loop.join(STOP_TIMEOUT)
    sentence = _misuse_sentence(server)
    if sentence:
        raise ExerciseFailed(sentence)
    if not loop.is_alive():
        if "error" in outcome:
            raise ExerciseFailed(f"serve_forever() raised {describe_error(outcome['error'])} "
                                 f"after {len(served)} requests.")
        return
    # Still serving: one request more tells "one too late" from "never".
    try:
        talk(server.server_address, b"one more\n", timeout=CLIENT_TIMEOUT)
    except OSError:
        pass
    loop.join(STOP_TIMEOUT)
    if not loop.is_alive() and not server.misuse:
        raise ExerciseFailed(f"with limit = {limit}, serve_forever() returned only after "
                             f"{len(served)} requests, one too many.")
    raise ExerciseFailed(f"with limit = {limit}, serve_forever() was still running "
                         f"{STOP_TIMEOUT:g} s after request {limit}: count the requests on the "
                         f"server (not on a handler) and call shutdown() from another thread "
                         f"at the limit.")


def _stop_quietly(server, loop):
    """Stop the loop if it still runs, and join the check's helpers; bounded."""
    if loop.is_alive():
        try:
            run_bounded(super(type(server), server).shutdown, timeout=STOP_TIMEOUT,
                        what="stopping the server")
        except TimedOut:
            raise ExerciseFailed(f"serve_forever() could not be stopped within "
                                 f"{STOP_TIMEOUT:g} s: something in the serving thread is "
                                 f"waiting for the loop to end, a deadlock.") from None
        loop.join(STOP_TIMEOUT)
    for helper in server.helpers:
        helper.join(STOP_TIMEOUT)


def check_countdown_server(server_class):
    """Check a server whose serve_forever() returns on its own after ``limit`` requests.

    The check serves its own handler (it replies b"ok\\n"), connects one
    client at a time, and expects serve_forever() to return after exactly
    ``limit`` requests; then it does the same with a subclass whose limit is
    1.  shutdown() or server_close() called from the serving thread fails
    with a sentence instead of deadlocking.
    """
    _require_server_class(server_class, "CountdownServer")
    limit = getattr(server_class, "limit", None)
    check(isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1,
          f"{server_class.__name__} needs a class attribute limit, the whole number "
          f"of requests to handle (3 in the exercise).")
    _countdown_run(server_class, limit)
    if limit != 1:

        class One(server_class):
            pass

        One.limit = 1
        _countdown_run(_disguised(One, server_class), 1)
    passed(f"serve_forever() returned on its own after limit requests ({limit}, and 1 "
           f"in a subclass), without a deadlock.")


# -- exercise 2: an error handler that counts and logs ---------------------------


class _Records(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def _captured_log_and_stderr():
    """The ERROR_LOGGER's records and what reaches stderr, for the length of the block.

    The logger is made to keep everything (level DEBUG) and not to pass it on
    (propagate False: with no handler anywhere, logging would print WARNING
    and above to stderr itself); both are restored afterwards.
    """
    logger = logging.getLogger(ERROR_LOGGER)
    saved = logger.level, logger.propagate, logger.disabled
    records, stderr = _Records(), io.StringIO()
    logger.setLevel(logging.DEBUG)
    logger.propagate, logger.disabled = False, False
    logger.addHandler(records)
    try:
        with contextlib.redirect_stderr(stderr):
            yield records.records, stderr
    finally:
        logger.removeHandler(records)
        logger.setLevel(saved[0])
        logger.propagate, logger.disabled = saved[1], saved[2]


#: What each of the two servers is sent, in order: b"bad" lines make the handler raise.
_PLAN = ([b"7\n", b"bad 1\n", b"bad 2\n", b"8\n"], [b"bad 3\n", b"9\n"])


def _counting_run(server_class):
    """Run the plan on two servers at once; return (servers, replies, records, stderr text)."""
    handlers = _handlers_of(server_class)

    class Doubler(handlers.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            if line.startswith(b"bad"):
                raise ValueError(f"bad number {line.strip().decode()!r}")
            self.wfile.write(b"%d\n" % (2 * int(line)))

    with _captured_log_and_stderr() as (records, stderr), contextlib.ExitStack() as stack:
        servers = []
        for _ in _PLAN:
            server = stack.enter_context(_create(server_class, LOCALHOST, Doubler))
            stack.enter_context(serving(server, POLL_INTERVAL, stop_timeout=STOP_TIMEOUT))
            servers.append(server)
        replies = [[], []]
        for turn in range(max(len(lines) for lines in _PLAN)):
            for which, lines in enumerate(_PLAN):
                if turn < len(lines):
                    try:
                        reply = talk(servers[which].server_address, lines[turn])
                    except OSError:
                        reply = None
                    replies[which].append(reply)
        stack.close()  # stop both servers while stderr is still captured
    return servers, replies, records, stderr.getvalue()


def _one_line(record):
    """True if the record formats to one line with no traceback."""
    try:
        message = record.getMessage()
    except Exception:
        return False
    return record.exc_info is None and not record.exc_text and not record.stack_info \
        and "\n" not in message


def check_counting_server(server_class):
    """Check a server whose handle_error() counts per server and logs one line.

    Two servers of the class run side by side; a handler raises ValueError
    for 2 requests on the first and 1 on the second.  error_count must be 2
    and 1, the logger ERROR_LOGGER must get 3 one-line records at ERROR or
    above naming "ValueError" and the message, stderr must stay empty, and
    the good requests must be answered.
    """
    _require_server_class(server_class, "CountingServer")
    try:
        servers, replies, records, stderr = _counting_run(server_class)
    except TimedOut:
        raise ExerciseFailed(f"a {server_class.__name__} did not stop within "
                             f"{STOP_TIMEOUT:g} s: handle_error() must return.") from None
    counts = [getattr(server, "error_count", None) for server in servers]
    expected_counts = [sum(line.startswith(b"bad") for line in lines) for lines in _PLAN]
    check(all(isinstance(count, int) for count in counts),
          "a server has no error_count: create it in __init__() (self.error_count = 0).")
    first_line = stderr.strip().splitlines()[0] if stderr.strip() else ""
    check(not stderr,
          f"handle_error() wrote to stderr (a report beginning {preview(first_line)}): do not "
          f"call super().handle_error(), which prints the traceback there.")
    check(counts == expected_counts,
          f"after 2 failed requests on one server and 1 on another, error_count was "
          f"{counts[0]} and {counts[1]}, expected 2 and 1: give each server its own count, "
          f"created in __init__() (a count on the class is shared).")
    for which, lines in enumerate(_PLAN):
        for line, reply in zip(lines, replies[which]):
            if not line.startswith(b"bad"):
                wanted = b"%d\n" % (2 * int(line))
                check(reply == wanted,
                      f"after an error, the request {line!r} received {reply!r}, expected "
                      f"{wanted!r}: the server must go on serving.")
    check(len(records) == 3,
          f"the logger {ERROR_LOGGER!r} received {len(records)} records for 3 errors, "
          f"expected one each.")
    for record in records:
        check(record.levelno >= logging.ERROR,
              f"an error was logged at level {record.levelname}, expected ERROR or above.")
        check(_one_line(record),
              "a log record carries a traceback or a line break: log one line with "
              "log.error(), not log.exception() or exc_info=True.")
        message = record.getMessage()
        check("ValueError" in message and "bad number" in message,
              f"the log line {preview(message, 60)} does not name the exception's type and "
              f"message (ValueError and 'bad number ...').")
    passed("handle_error() counted each server's errors, logged one line each at ERROR, "
           "and the servers went on serving.")


# -- exercise 3: a server that binds its port again at once ---------------------


def _errno_name(error):
    return errno.errorcode.get(error.errno, str(error.errno))


def check_restartable_server(server_class):
    """Check a server that rebinds its port at once, and refuses to share a live one.

    A first server of the class serves two clients that wait for the server
    to close first (so the server's side ends in TIME_WAIT), and is closed;
    a second one must then bind the same port at once and serve; while it
    listens, a third must fail to bind (EADDRINUSE).
    """
    _require_server_class(server_class, "RestartableServer")
    name = server_class.__name__
    handlers = _handlers_of(server_class)

    class Reply(handlers.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    try:
        first = _create(server_class, LOCALHOST, Reply)
    except OSError as error:
        raise ExerciseFailed(f"creating a {name} on a free port failed with "
                             f"{_errno_name(error)}.") from None
    with first, serving(first, POLL_INTERVAL, stop_timeout=STOP_TIMEOUT):
        address = first.server_address
        for data in (b"one\n", b"two\n"):
            # half_close=False: the client waits for the server to close first.
            reply = talk(address, data, half_close=False)
            check(reply == data.upper(),
                  f"the first server answered {data!r} with {reply!r}, expected "
                  f"{data.upper()!r}.")
    try:
        second = _create(server_class, address, Reply)
    except OSError as error:
        raise ExerciseFailed(
            f"a new {name} on the port of the one that had just closed failed with "
            f"{_errno_name(error)}: the closed server's connections still hold that port "
            f"in TIME_WAIT, and this class did not ask the system, before binding, to bind "
            f"over them.") from None
    with second, serving(second, POLL_INTERVAL, stop_timeout=STOP_TIMEOUT):
        reply = talk(address, b"again\n")
        check(reply == b"AGAIN\n",
              f"the restarted server answered b'again\\n' with {reply!r}, expected b'AGAIN\\n'.")
        try:
            third = _create(server_class, address, Reply)
        except OSError:
            pass  # refused while the second listens: right
        else:
            third.server_close()
            raise ExerciseFailed(
                f"a third {name} could bind the port while the second was listening: that "
                f"is SO_REUSEPORT (allow_reuse_port), which shares a live port, while a "
                f"restart needs only allow_reuse_address.")
    passed("a new server bound the port at once after the old one closed, and a second "
           "live server on it was refused.")
