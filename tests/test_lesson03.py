"""Lesson 03's exercise checks: they pass the worked solutions, on both
implementations, and fail each typical wrong answer with one sentence that
says what is wrong."""

import re
import socketserver
import sys
import threading

import pytest

import sockserv
from sockserv.teach import lesson03
from sockserv.teach.checks import ExerciseFailed

IMPLEMENTATIONS = pytest.mark.parametrize(
    "impl", [socketserver, sockserv], ids=["stdlib", "sockserv"])


def fails_with(check, answer, words):
    """Run check on a wrong answer; return its message after checking its shape."""
    with pytest.raises(ExerciseFailed) as caught:
        check(answer)
    message = str(caught.value)
    assert words in message
    # One sentence: one line, ending with a period, no second sentence after it.
    assert "\n" not in message
    assert message.endswith(".")
    assert not re.search(r"\.\s+[A-Z]", message), message
    return message


# -- exercise 1: greeter -----------------------------------------------------------


def greeter(impl, greet_in="setup", bye_in="finish", call_super_setup=True):
    """The worked solution, or a typical mistake chosen by the arguments."""

    class Greeter(impl.StreamRequestHandler):
        def setup(self):
            if call_super_setup:
                super().setup()
            if greet_in == "setup":
                self.wfile.write(b"hello\n")

        def handle(self):
            if greet_in == "handle":
                self.wfile.write(b"hello\n")
            self.wfile.write(self.rfile.readline().upper())
            if bye_in == "handle":
                self.wfile.write(b"bye\n")

        def finish(self):
            if bye_in == "finish":
                self.wfile.write(b"bye\n")
            super().finish()

    return Greeter


@IMPLEMENTATIONS
def test_greeter_solution_passes(impl, capsys):
    lesson03.check_greeter(greeter(impl))
    assert capsys.readouterr().out.startswith("Check passed:")


def test_greeter_starter_fails():
    class Starter(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    message = fails_with(lesson03.check_greeter, Starter, "the client received b'ABC\\n'")
    assert "expected b'hello\\nABC\\nbye\\n'" in message


def test_greeter_goodbye_in_handle_fails():
    fails_with(lesson03.check_greeter, greeter(sockserv, bye_in="handle"),
               "without the goodbye")


def test_greeter_greeting_in_handle_fails():
    fails_with(lesson03.check_greeter, greeter(sockserv, greet_in="handle"),
               "without the greeting")


def test_greeter_without_super_setup_fails():
    fails_with(lesson03.check_greeter, greeter(socketserver, call_super_setup=False),
               "super().setup(), which creates wfile")


def test_a_handler_that_never_returns_fails_instead_of_hanging(monkeypatch):
    monkeypatch.setattr(lesson03, "TIMEOUT", 0.3)
    release = threading.Event()

    class Stuck(sockserv.StreamRequestHandler):
        def handle(self):
            release.wait(10)

    try:
        fails_with(lesson03.check_greeter, Stuck, "handle() must return")
    finally:
        release.set()  # lets the check's serving thread finish (the leak guard joins it)


# -- exercise 2: a server that refuses after `limit` connections ---------------------


def limited_server(impl, off_by_one=False):
    """The worked solution, or the version that stops one connection early."""

    class LimitedServer(impl.TCPServer):
        limit = 2
        accepted = 0

        def verify_request(self, request, client_address):
            self.accepted += 1
            if off_by_one:
                return self.accepted < self.limit
            return self.accepted <= self.limit

    return LimitedServer


@IMPLEMENTATIONS
def test_limited_server_solution_passes(impl, capsys):
    lesson03.check_limited_server(limited_server(impl))
    assert capsys.readouterr().out.startswith("Check passed:")


def test_limited_server_with_a_larger_limit_passes(capsys):
    class FourServer(limited_server(sockserv)):
        limit = 4

    lesson03.check_limited_server(FourServer)
    assert "the first 4 connections" in capsys.readouterr().out


def test_limited_server_starter_fails():
    class Starter(socketserver.TCPServer):
        limit = 2

        def verify_request(self, request, client_address):
            return True

    fails_with(lesson03.check_limited_server, Starter,
               "verify_request() returned [True, True, True, True]")


def test_limited_server_off_by_one_fails():
    fails_with(lesson03.check_limited_server, limited_server(sockserv, off_by_one=True),
               "returned [True, False, False, False]")


def test_limited_server_without_a_counter_fails():
    class NoCounter(sockserv.TCPServer):
        limit = 2

        def verify_request(self, request, client_address):
            self.accepted += 1
            return self.accepted <= self.limit

    fails_with(lesson03.check_limited_server, NoCounter,
               "verify_request() raised AttributeError")


def test_limited_server_refusing_outside_verify_request_fails():
    class RefusesInProcessRequest(socketserver.TCPServer):
        limit = 2
        accepted = 0

        def process_request(self, request, client_address):
            self.accepted += 1
            if self.accepted <= self.limit:
                super().process_request(request, client_address)
            else:
                self.shutdown_request(request)

    fails_with(lesson03.check_limited_server, RefusesInProcessRequest,
               "verify_request() returned [True, True, True, True]")


def test_limited_server_without_limit_fails():
    fails_with(lesson03.check_limited_server, sockserv.TCPServer,
               "needs a class attribute limit")


# -- exercise 3: handle requests until nobody comes ---------------------------------


def patient_server(impl, count_timeout=False, reset_flag=True):
    """The worked solution, or a typical mistake chosen by the arguments."""

    class PatientServer(impl.TCPServer):
        timeout = 0.2
        timed_out = False

        def handle_timeout(self):
            self.timed_out = True

        def serve_until_quiet(self):
            if reset_flag:
                self.timed_out = False
            handled = 0
            while not self.timed_out:
                self.handle_request()
                if self.timed_out and not count_timeout:
                    break
                handled += 1
            return handled

    return PatientServer


@IMPLEMENTATIONS
def test_patient_server_solution_passes(impl, capsys):
    lesson03.check_patient_server(patient_server(impl))
    assert capsys.readouterr().out.startswith("Check passed:")


def test_patient_server_starter_fails():
    class Starter(socketserver.TCPServer):
        timeout = 0.2

        def serve_until_quiet(self):
            self.handle_request()
            return 1

    fails_with(lesson03.check_patient_server, Starter,
               "call 1 of serve_until_quiet() returned 1 with 3 clients waiting")


def test_patient_server_counting_the_timeout_fails():
    fails_with(lesson03.check_patient_server, patient_server(sockserv, count_timeout=True),
               "returned 4 with 3 clients waiting, expected 3 (a timeout is not a request)")


def test_patient_server_that_never_resets_its_flag_fails():
    fails_with(lesson03.check_patient_server, patient_server(socketserver, reset_flag=False),
               "call 3 of serve_until_quiet() returned 0 with 2 clients waiting")


def test_patient_server_without_timeout_fails():
    class NoTimeout(sockserv.TCPServer):
        def serve_until_quiet(self):
            return 0

    fails_with(lesson03.check_patient_server, NoTimeout, "NoTimeout.timeout is None")


@IMPLEMENTATIONS
def test_patient_server_that_never_stops_fails_instead_of_hanging(impl, monkeypatch):
    monkeypatch.setattr(lesson03, "TIMEOUT", 1.0)

    class NeverStops(impl.TCPServer):
        timeout = 0.05

        def serve_until_quiet(self):
            handled = 0
            while True:  # never looks for the timeout
                self.handle_request()
                handled += 1

    fails_with(lesson03.check_patient_server, NeverStops,
               "stop the loop as soon as handle_timeout() has been called")


def test_patient_server_that_raises_fails():
    class Raises(sockserv.TCPServer):
        timeout = 0.2

        def serve_until_quiet(self):
            return self.handled

    fails_with(lesson03.check_patient_server, Raises,
               "serve_until_quiet() raised AttributeError")
