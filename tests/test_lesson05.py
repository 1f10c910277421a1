"""Lesson 05's exercise checks: they pass the worked solutions, on both
implementations, and fail each plausible wrong answer with one sentence that
says what is wrong, within a bound."""

import logging
import socket
import sys
import threading

import pytest

from lesson_checks import BOTH, fails_with, passes, short_bounds_for
from sockserv.teach import lesson05
from sockserv.teach.harness import IMPLEMENTATIONS

stdlib, sockserv = IMPLEMENTATIONS["stdlib"], IMPLEMENTATIONS["sockserv"]
short_bounds = short_bounds_for(lesson05, client=0.5, stop=0.5)


# -- exercise 1: a server that stops itself after `limit` requests -----------------


def countdown(impl, how="thread", base="TCPServer", limit=3):
    """The worked solution, or a typical mistake chosen by how.

    how: "thread" (right), "direct" (shutdown() from the serving thread),
    "close" (server_close() instead), "late" (one request too many),
    "early" (one too few), "handler" (count kept on the handler),
    "three" (the limit hard-coded).
    """

    class Counting(impl.StreamRequestHandler):
        def handle(self):
            self.count = getattr(self, "count", 0) + 1  # a new handler every time: always 1
            if self.count == self.server.limit:
                threading.Thread(target=self.server.shutdown).start()

    class CountdownServer(getattr(impl, base)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.handled = 0

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            if how == "handler":
                return
            self.handled += 1
            target = {"late": self.limit + 1, "early": self.limit - 1, "three": 3}.get(how, self.limit)
            if self.handled == target:
                if how == "direct":
                    self.shutdown()
                elif how == "close":
                    self.server_close()
                else:
                    threading.Thread(target=self.shutdown).start()

    CountdownServer.limit = limit
    return CountdownServer


@BOTH
def test_countdown_solution_passes(impl, capsys):
    passes(lesson05.check_countdown_server, countdown(impl), capsys=capsys)


def test_countdown_threading_server_may_call_shutdown_from_its_handler(capsys):
    # A handler thread of a ThreadingTCPServer is not the serving thread: no deadlock.
    class Direct(stdlib.ThreadingTCPServer):
        limit = 2

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.handled = 0
            self.lock = threading.Lock()

        def finish_request(self, request, client_address):
            super().finish_request(request, client_address)
            with self.lock:
                self.handled += 1
                last = self.handled == self.limit
            if last:
                self.shutdown()

    passes(lesson05.check_countdown_server, Direct, capsys=capsys)


@BOTH
def test_countdown_shutdown_from_the_serving_thread_is_a_deadlock(impl, short_bounds):
    fails_with(lesson05.check_countdown_server, countdown(impl, "direct"), words="deadlock")


def test_countdown_starter_of_the_notebook_fails_without_hanging(short_bounds):
    class CountdownServer(stdlib.TCPServer):
        limit = 3

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.handled = 0

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            self.handled += 1
            if self.handled == self.limit:
                self.shutdown()

    fails_with(lesson05.check_countdown_server, CountdownServer,
               words="shutdown() was called from the thread that runs serve_forever()")


@BOTH
def test_countdown_server_close_does_not_stop_the_loop(impl, short_bounds):
    fails_with(lesson05.check_countdown_server, countdown(impl, "close"),
               words="server_close() was called from inside serve_forever()")


def test_countdown_one_request_too_many(monkeypatch):
    """Short replies only: after its one request too many this answer does stop, from
    another thread, and the check must give that stop the lesson's own bound."""
    monkeypatch.setattr(lesson05, "CLIENT_TIMEOUT", 0.5)
    fails_with(lesson05.check_countdown_server, countdown(stdlib, "late"), words="one too many")


def test_countdown_one_request_too_few(short_bounds):
    fails_with(lesson05.check_countdown_server, countdown(sockserv, "early"),
               words="returned after 2 requests, before request 3")


def test_countdown_count_on_the_handler_never_stops(short_bounds):
    fails_with(lesson05.check_countdown_server, countdown(stdlib, "handler"),
               words="was still running")


def test_countdown_hard_coded_limit_fails_with_limit_one(monkeypatch):
    """Right for limit = 3, so that run keeps the lesson's bounds (its stop must be waited
    for, however busy the machine); only the run with limit = 1, which never stops, is
    given short ones."""
    run_for_real = lesson05._countdown_run

    def run(server_class, limit):
        if limit == 1:
            monkeypatch.setattr(lesson05, "STOP_TIMEOUT", 0.5)
        run_for_real(server_class, limit)

    monkeypatch.setattr(lesson05, "_countdown_run", run)
    message = fails_with(lesson05.check_countdown_server, countdown(stdlib, "three"),
                         words="was still running")
    assert "limit = 1" in message


def test_countdown_shutdown_from_service_actions_is_a_deadlock_too(short_bounds):
    class FromTheLoop(stdlib.TCPServer):
        limit = 2

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.handled = 0

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            self.handled += 1

        def service_actions(self):  # also runs in the serving thread
            if self.handled == self.limit:
                self.shutdown()

    fails_with(lesson05.check_countdown_server, FromTheLoop, words="deadlock")


@pytest.mark.parametrize("check", [lesson05.check_countdown_server, lesson05.check_counting_server,
                                   lesson05.check_restartable_server])
def test_checks_want_a_server_class(check):
    with stdlib.TCPServer(("127.0.0.1", 0), stdlib.BaseRequestHandler) as instance:
        fails_with(check, instance, words="not 'TCPServer' (no parentheses after it)")
    fails_with(check, stdlib.StreamRequestHandler,
               words="must be a subclass of socketserver.TCPServer")


def test_countdown_needs_a_limit():
    fails_with(lesson05.check_countdown_server, stdlib.TCPServer,
               words="needs a class attribute limit")


# -- exercise 2: an error handler that counts and logs ------------------------------


def counting(impl, count_on="server", log="error", call_super=False, message="repr"):
    """The worked solution, or a typical mistake chosen by the arguments."""
    logger = logging.getLogger(lesson05.ERROR_LOGGER)

    class CountingServer(impl.TCPServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if count_on == "server":
                self.error_count = 0

        def handle_error(self, request, client_address):
            if count_on == "server":
                self.error_count += 1
            elif count_on == "class":
                CountingServer.error_count = getattr(CountingServer, "error_count", 0) + 1
            error = sys.exc_info()[1]
            text = repr(error) if message == "repr" else str(error)
            if log == "error":
                logger.error("request from %s failed: %s", client_address[0], text)
            elif log == "exception":
                logger.exception("request from %s failed", client_address[0])
            elif log == "info":
                logger.info("request from %s failed: %s", client_address[0], text)
            if call_super:
                super().handle_error(request, client_address)

    return CountingServer


@BOTH
def test_counting_solution_passes(impl, capsys):
    passes(lesson05.check_counting_server, counting(impl), capsys=capsys)


def test_counting_check_leaves_the_logger_as_it_was(capsys):
    logger = logging.getLogger(lesson05.ERROR_LOGGER)
    before = logger.level, logger.propagate, list(logger.handlers)
    passes(lesson05.check_counting_server, counting(stdlib), capsys=capsys)
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_counting_starter_of_the_notebook_writes_to_stderr():
    class CountingServer(stdlib.TCPServer):
        error_count = 0

        def handle_error(self, request, client_address):
            CountingServer.error_count += 1
            super().handle_error(request, client_address)

    fails_with(lesson05.check_counting_server, CountingServer,
               words="do not call super().handle_error()")


@BOTH
def test_counting_a_count_on_the_class_is_shared(impl):
    fails_with(lesson05.check_counting_server, counting(impl, count_on="class"),
               words="error_count was 3 and 3, expected 2 and 1")


def test_counting_no_count_at_all():
    fails_with(lesson05.check_counting_server, counting(stdlib, count_on="nowhere"),
               words="has no error_count")


def test_counting_log_exception_adds_a_traceback():
    fails_with(lesson05.check_counting_server, counting(sockserv, log="exception"),
               words="not log.exception()")


def test_counting_info_is_not_an_error():
    fails_with(lesson05.check_counting_server, counting(stdlib, log="info"), words="at level INFO")


def test_counting_nothing_logged():
    fails_with(lesson05.check_counting_server, counting(stdlib, log="none"),
               words="received 0 records for 3 errors")


def test_counting_the_message_alone_does_not_name_the_type():
    fails_with(lesson05.check_counting_server, counting(stdlib, message="str"),
               words="does not name the exception's type")


# -- exercise 3: a server that binds its port again at once -------------------------


def restartable(impl, how="reuse_address"):
    """The worked solution, or a typical mistake chosen by how."""

    class RestartableServer(impl.TCPServer):
        if how in ("reuse_address", "both"):
            allow_reuse_address = True
        if how == "both":
            allow_reuse_port = True

        def server_bind(self):
            if how == "so_reuseport":
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            super().server_bind()

        def server_activate(self):
            if how == "too_late":  # after bind(): SO_REUSEADDR no longer matters
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            super().server_activate()

    return RestartableServer


@BOTH
def test_restartable_solution_passes(impl, capsys):
    passes(lesson05.check_restartable_server, restartable(impl), capsys=capsys)


@BOTH
def test_restartable_plain_server_cannot_rebind(impl):
    fails_with(lesson05.check_restartable_server, restartable(impl, "plain"),
               words="failed with EADDRINUSE: the closed server's connections still hold that port")


def test_restartable_option_set_after_bind_is_too_late():
    fails_with(lesson05.check_restartable_server, restartable(stdlib, "too_late"),
               words="failed with EADDRINUSE")


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
@BOTH
def test_restartable_reuse_port_shares_a_live_port(impl):
    fails_with(lesson05.check_restartable_server, restartable(impl, "so_reuseport"),
               words="could bind the port while the second was listening")


@pytest.mark.skipif(sys.version_info < (3, 11) or not hasattr(socket, "SO_REUSEPORT"),
                    reason="allow_reuse_port exists from Python 3.11")
def test_restartable_allow_reuse_port_alone_shares_a_live_port():
    class RestartableServer(stdlib.TCPServer):
        allow_reuse_port = True

    fails_with(lesson05.check_restartable_server, RestartableServer,
               words="could bind the port while the second was listening")


@pytest.mark.skipif(sys.version_info < (3, 11) or not hasattr(socket, "SO_REUSEPORT"),
                    reason="allow_reuse_port exists from Python 3.11")
def test_restartable_both_options_share_a_live_port():
    fails_with(lesson05.check_restartable_server, restartable(sockserv, "both"),
               words="that is SO_REUSEPORT (allow_reuse_port)")
