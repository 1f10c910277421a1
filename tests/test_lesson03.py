"""Lesson 03's exercise checks: they pass the worked solutions, on both
implementations, and fail each plausible wrong answer with one sentence that
says what is wrong, within a bound."""

import threading

import pytest

from lesson_checks import BOTH, fails_with, passes, short_bounds_for
from sockserv.teach import lesson03
from sockserv.teach.checks import ExerciseFailed
from sockserv.teach.harness import IMPLEMENTATIONS

stdlib, sockserv = IMPLEMENTATIONS["stdlib"], IMPLEMENTATIONS["sockserv"]
short_bounds = short_bounds_for(lesson03, client=0.5, stop=0.5)


# -- exercise 1: greeter -----------------------------------------------------------


def greeter(impl, greet_in="setup", bye_in="finish", super_setup=True,
            super_finish="after"):
    """The worked solution, or a typical mistake chosen by the arguments.

    super_finish: "after" the goodbye (right), "before" it, or "never".
    """

    class Greeter(impl.StreamRequestHandler):
        def setup(self):
            if super_setup:
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
            if super_finish == "before":
                super().finish()
            if bye_in == "finish":
                self.wfile.write(b"bye\n")
            if super_finish == "after":
                super().finish()

    return Greeter


@BOTH
def test_greeter_solution_passes(impl, capsys):
    passes(lesson03.check_greeter, greeter(impl), capsys=capsys)


def test_greeter_starter_fails():
    class Starter(stdlib.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    message = fails_with(lesson03.check_greeter, Starter, words="the client received b'ABC\\n'")
    assert "expected b'hello\\nABC\\nbye\\n'" in message


def test_greeter_goodbye_in_handle_fails():
    fails_with(lesson03.check_greeter, greeter(sockserv, bye_in="handle"),
               words="without the goodbye")


def test_greeter_greeting_in_handle_fails():
    fails_with(lesson03.check_greeter, greeter(sockserv, greet_in="handle"),
               words="without the greeting")


def test_greeter_without_super_setup_fails():
    fails_with(lesson03.check_greeter, greeter(stdlib, super_setup=False),
               words="super().setup(), which creates rfile and wfile")


@BOTH
def test_greeter_goodbye_after_super_finish_fails(impl):
    # On an unbuffered wfile the late write still reaches the client (neither
    # implementation's writer looks at `closed`): only the buffered copy shows it.
    fails_with(lesson03.check_greeter, greeter(impl, super_finish="before"),
               words="write the goodbye before calling super().finish()")


@BOTH
def test_greeter_without_super_finish_fails(impl):
    fails_with(lesson03.check_greeter, greeter(impl, super_finish="never"),
               words="finish() left wfile open: call super().finish()")


def test_greeter_that_calls_finish_from_handle_fails():
    class FinishesTwice(stdlib.StreamRequestHandler):
        def setup(self):
            super().setup()
            self.wfile.write(b"hello\n")

        def handle(self):
            self.wfile.write(self.rfile.readline().upper())
            self.finish()  # the server calls it again

        def finish(self):
            self.wfile.write(b"bye\n")
            super().finish()

    fails_with(lesson03.check_greeter, FinishesTwice,
               words="received b'hello\\nABC\\nbye\\nbye\\n'")


def test_greeter_with_a_placeholder_is_told_to_fill_it_in():
    class Unfinished(stdlib.StreamRequestHandler):
        def setup(self):
            ...

    message = fails_with(lesson03.check_greeter, Unfinished, words="fill in the ...")
    assert message == "fill in the ... in Unfinished first."


def test_a_handler_that_never_returns_fails_instead_of_hanging(short_bounds):
    release = threading.Event()

    class Stuck(sockserv.StreamRequestHandler):
        def handle(self):
            release.wait(10)

    with pytest.raises(ExerciseFailed) as caught:
        lesson03.check_greeter(Stuck)
    assert "handle() must return" in str(caught.value)
    release.set()  # lets the check's stopping thread finish; join it for the leak guard
    caught.value.__cause__.thread.join(5)
    assert not caught.value.__cause__.thread.is_alive()


# -- exercise 2: a server that refuses after `limit` connections ---------------------


def limited_server(impl, counter="self", off_by_one=False):
    """The worked solution, or a typical mistake chosen by the arguments.

    counter: where the count lives, "self" (right), "class" or "global".
    """
    shared = {"accepted": 0}

    class LimitedServer(impl.TCPServer):
        limit = 2

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.accepted = 0

        def verify_request(self, request, client_address):
            if counter == "self":
                self.accepted += 1
                count = self.accepted
            elif counter == "class":
                type(self).accepted = getattr(type(self), "accepted", 0) + 1
                count = type(self).accepted
            else:
                shared["accepted"] += 1
                count = shared["accepted"]
            return count < self.limit if off_by_one else count <= self.limit

    return LimitedServer


@BOTH
def test_limited_server_solution_passes(impl, capsys):
    passes(lesson03.check_limited_server, limited_server(impl), capsys=capsys)


def test_limited_server_with_a_class_default_and_an_own_count_passes(capsys):
    # `accepted = 0` on the class, `self.accepted += 1`: the first += makes the
    # server's own attribute, so every server still counts for itself.
    class ClassDefault(stdlib.TCPServer):
        limit = 2
        accepted = 0

        def verify_request(self, request, client_address):
            self.accepted += 1
            return self.accepted <= self.limit

    passes(lesson03.check_limited_server, ClassDefault, capsys=capsys)
    passes(lesson03.check_limited_server, ClassDefault, capsys=capsys)


def test_limited_server_solution_passes_twice(capsys):
    server_class = limited_server(sockserv)
    passes(lesson03.check_limited_server, server_class, capsys=capsys)
    passes(lesson03.check_limited_server, server_class, capsys=capsys)


def test_limited_server_with_a_larger_limit_passes(capsys):
    class FourServer(limited_server(sockserv)):
        limit = 4

    assert "the first 4 connections" in passes(lesson03.check_limited_server,
                                               FourServer, capsys=capsys)


def test_limited_server_starter_fails():
    class Starter(stdlib.TCPServer):
        limit = 2

        def verify_request(self, request, client_address):
            return True

    fails_with(lesson03.check_limited_server, Starter,
               words="verify_request() returned [True, True, True, True]")


def test_limited_server_off_by_one_fails():
    fails_with(lesson03.check_limited_server, limited_server(sockserv, off_by_one=True),
               words="returned [True, False, False, False]")


@pytest.mark.parametrize("counter", ["class", "global"])
def test_limited_server_with_a_count_shared_by_every_server_fails(counter):
    # On a fresh class the first server passes; the second server running at the
    # same time shows that the count is shared.
    fails_with(lesson03.check_limited_server, limited_server(stdlib, counter=counter),
               words="each server needs its own count")


def test_limited_server_with_a_class_count_left_from_before_fails():
    server_class = limited_server(sockserv, counter="class")
    server_class.accepted = 5  # what an earlier run of the check leaves behind
    fails_with(lesson03.check_limited_server, server_class,
               words="the count must start at 0 for every new server")


def test_limited_server_without_a_counter_fails():
    class NoCounter(sockserv.TCPServer):
        limit = 2

        def verify_request(self, request, client_address):
            self.accepted += 1
            return self.accepted <= self.limit

    fails_with(lesson03.check_limited_server, NoCounter,
               words="verify_request() raised AttributeError")


def test_limited_server_refusing_outside_verify_request_fails():
    class RefusesInProcessRequest(stdlib.TCPServer):
        limit = 2
        accepted = 0

        def process_request(self, request, client_address):
            self.accepted += 1
            if self.accepted <= self.limit:
                super().process_request(request, client_address)
            else:
                self.shutdown_request(request)

    fails_with(lesson03.check_limited_server, RefusesInProcessRequest,
               words="verify_request() returned [True, True, True, True]")


def test_limited_server_without_limit_fails():
    fails_with(lesson03.check_limited_server, sockserv.TCPServer,
               words="needs a class attribute limit")


def test_limited_server_whose_constructor_fails_is_reported():
    class BrokenInit(stdlib.TCPServer):
        limit = 2

        def __init__(self, address, handler):
            self.accepted = 0
            super().__init__(address)  # forgot the handler

    fails_with(lesson03.check_limited_server, BrokenInit,
               words="creating a BrokenInit raised TypeError")


def test_limited_server_whose_verify_request_never_returns_fails(short_bounds):
    release = threading.Event()

    class Stuck(sockserv.TCPServer):
        limit = 2

        def verify_request(self, request, client_address):
            release.wait(10)
            return True

    with pytest.raises(ExerciseFailed) as caught:
        lesson03.check_limited_server(Stuck)
    assert "verify_request() must return" in str(caught.value)
    release.set()
    caught.value.__cause__.thread.join(5)
    assert not caught.value.__cause__.thread.is_alive()


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


@BOTH
def test_patient_server_solution_passes(impl, capsys):
    passes(lesson03.check_patient_server, patient_server(impl), capsys=capsys)


def test_patient_server_starter_fails():
    class Starter(stdlib.TCPServer):
        timeout = 0.2

        def serve_until_quiet(self):
            self.handle_request()
            return 1

    fails_with(lesson03.check_patient_server, Starter,
               words="call 1 of serve_until_quiet() returned 1 with 3 clients waiting")


def test_patient_server_counting_the_timeout_fails():
    fails_with(lesson03.check_patient_server, patient_server(sockserv, count_timeout=True),
               words="returned 4 with 3 clients waiting, expected 3 (a timeout is not a request)")


def test_patient_server_that_never_resets_its_flag_fails():
    fails_with(lesson03.check_patient_server, patient_server(stdlib, reset_flag=False),
               words="call 3 of serve_until_quiet() returned 0 with 2 clients waiting")


def test_patient_server_without_timeout_fails():
    class NoTimeout(sockserv.TCPServer):
        def serve_until_quiet(self):
            return 0

    fails_with(lesson03.check_patient_server, NoTimeout, words="NoTimeout.timeout is None")


@BOTH
def test_patient_server_that_never_stops_fails_instead_of_hanging(impl, short_bounds):

    class NeverStops(impl.TCPServer):
        timeout = 0.05

        def serve_until_quiet(self):
            handled = 0
            while True:  # never looks for the timeout
                self.handle_request()
                handled += 1

    fails_with(lesson03.check_patient_server, NeverStops,
               words="stop the loop as soon as handle_timeout() has been called")


def test_patient_server_that_raises_fails():
    class Raises(sockserv.TCPServer):
        timeout = 0.2

        def serve_until_quiet(self):
            return self.handled

    fails_with(lesson03.check_patient_server, Raises,
               words="serve_until_quiet() raised AttributeError")


def test_patient_server_with_a_placeholder_is_told_to_fill_it_in():
    class Unfinished(sockserv.TCPServer):
        timeout = 0.2

        def serve_until_quiet(self):
            ...

    fails_with(lesson03.check_patient_server, Unfinished,
               words="fill in the ... in Unfinished first.")
