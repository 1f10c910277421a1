"""Lesson 01's exercise checks: they pass on the worked solutions and fail,
with one sentence, on the typical wrong answers -- above all the loop that
ignores ``recv() == b''``, which must be reported, not left spinning.

The leak guard in conftest.py checks that no check leaves a thread or a
socket behind, whichever way it ends.
"""

import socket
import socketserver

import pytest

import sockserv
from sockserv.teach import lesson01
from sockserv.teach.checks import ExerciseFailed

IMPLEMENTATIONS = [pytest.param(socketserver, id="stdlib"),
                   pytest.param(sockserv, id="sockserv")]


def fails_with(call, *args):
    """Run a check that must fail; return its message, checked to be one sentence."""
    with pytest.raises(ExerciseFailed) as failure:
        call(*args)
    message = str(failure.value)
    assert "\n" not in message and message.endswith("."), message
    assert message.count(". ") == 0, message
    return message


def passes(call, arg, capsys):
    """Run a check that must pass; return the one line it printed."""
    call(arg)
    out = capsys.readouterr().out
    assert out.startswith("Check passed: ") and out.count("\n") == 1, out
    return out


# -- the watched connection -------------------------------------------------


def test_watched_socket_allows_a_few_empty_reads_then_raises():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            conn, _ = listener.accept()
            with lesson01._watch(conn) as watched:
                assert conn.fileno() == -1  # the fd moved to the watched socket
                client.sendall(b"data")
                client.shutdown(socket.SHUT_WR)
                received = b""
                while len(received) < 4:
                    received += watched.recv(1024)
                assert received == b"data"
                # Both ways of reading count, up to the limit, without raising.
                assert watched.recv(1024) == b""
                buffer = bytearray(8)
                for _ in range(lesson01.MAX_EMPTY_READS - 1):
                    assert watched.recv_into(buffer) == 0
                with pytest.raises(lesson01.ReadAfterEOF):
                    watched.recv(1024)
                # Not an OSError: code that catches socket errors must not swallow it.
                assert not issubclass(lesson01.ReadAfterEOF, OSError)


# -- exercise 1: stop at end of stream -----------------------------------------


def echo_until_eof_solution(conn):
    while True:
        data = conn.recv(1024)
        if data == b"":
            return
        conn.sendall(data)


def echo_until_eof_starter(conn):
    while True:
        data = conn.recv(1024)
        conn.sendall(data)


def echo_until_eof_one_recv(conn):
    conn.sendall(conn.recv(1024))


def echo_until_eof_typo(conn):
    while data := conn.recv(1024):
        conn.sendal(data)


def test_echo_until_eof_solution_passes(capsys):
    out = passes(lesson01.check_echo_until_eof, echo_until_eof_solution, capsys)
    assert "3024 bytes" in out


def test_echo_until_eof_that_spins_is_reported_not_left_spinning():
    message = fails_with(lesson01.check_echo_until_eof, echo_until_eof_starter)
    assert "kept calling recv() after it returned b''" in message


def test_echo_until_eof_that_stops_early_is_reported():
    message = fails_with(lesson01.check_echo_until_eof, echo_until_eof_one_recv)
    # Closing with bytes unread resets the connection, which may destroy part
    # or all of the echo on its way: how much the client got back varies.
    assert message.startswith("the client sent 3024 bytes and got back b'"), message
    assert message.endswith("echo every byte, in order, until recv() returns b''."), message


def test_echo_until_eof_that_raises_is_reported():
    message = fails_with(lesson01.check_echo_until_eof, echo_until_eof_typo)
    assert message.startswith("echo_until_eof() raised AttributeError")


def test_echo_until_eof_check_wants_the_function():
    message = fails_with(lesson01.check_echo_until_eof, None)
    assert "pass the function itself" in message


# -- exercise 2: an upper-casing echo ------------------------------------------


def upper_handlers(impl):
    """The solution, a stream-based solution, and the typical wrong answers."""

    class UpperEchoHandler(impl.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(1024)
                if data == b"":
                    break
                self.request.sendall(data.upper())

    class UpperLinesHandler(impl.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line.upper())

    class StarterHandler(impl.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(1024)
                if data == b"":
                    break
                self.request.sendall(data)

    class SpinningHandler(impl.BaseRequestHandler):
        def handle(self):
            while True:
                self.request.sendall(self.request.recv(1024).upper())

    class SpinningLinesHandler(impl.StreamRequestHandler):
        def handle(self):
            while True:
                self.wfile.write(self.rfile.readline().upper())

    return (UpperEchoHandler, UpperLinesHandler, StarterHandler,
            SpinningHandler, SpinningLinesHandler)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_upper_echo_solutions_pass(impl, capsys):
    solution, lines_solution, *_ = upper_handlers(impl)
    for handler in (solution, lines_solution):
        out = passes(lesson01.check_upper_echo, handler, capsys)
        assert "on socketserver and on sockserv" in out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_upper_echo_starter_is_reported(impl):
    _, _, starter, _, _ = upper_handlers(impl)
    message = fails_with(lesson01.check_upper_echo, starter)
    assert message == ("on socketserver the handler sent back "
                       "b'hello, world\\nfrom socketserver\\n' for "
                       "b'hello, world\\nfrom socketserver\\n', expected "
                       "b'HELLO, WORLD\\nFROM SOCKETSERVER\\n'.")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_upper_echo_spinning_handlers_are_reported(impl):
    *_, spinning, spinning_lines = upper_handlers(impl)
    for handler in (spinning, spinning_lines):
        message = fails_with(lesson01.check_upper_echo, handler)
        assert message.startswith("handle() on socketserver kept calling recv() "
                                  "after it returned b''"), message


def test_upper_echo_check_wants_the_class():
    solution, *_ = upper_handlers(socketserver)
    message = fails_with(lesson01.check_upper_echo, solution.handle)
    assert "pass the handler class itself" in message


# -- exercise 3: count the bytes of each connection ----------------------------


def counting_handlers(impl):
    """The solution and the typical wrong answers."""

    class Counting(impl.BaseRequestHandler):
        def handle(self):
            count = 0
            while data := self.request.recv(1024):
                self.request.sendall(data)
                count += len(data)
            self.server.byte_counts.append(count)

    class CountsOnTheHandler(impl.BaseRequestHandler):
        byte_counts = []  # a class attribute: the server's list stays empty

        def handle(self):
            count = 0
            while data := self.request.recv(1024):
                self.request.sendall(data)
                count += len(data)
            self.byte_counts.append(count)

    class CountsEachPiece(impl.BaseRequestHandler):
        def handle(self):
            while data := self.request.recv(1024):
                self.request.sendall(data)
                self.server.byte_counts.append(len(data))

    class CountsButForgetsToEcho(impl.BaseRequestHandler):
        def handle(self):
            count = 0
            while data := self.request.recv(1024):
                count += len(data)
            self.server.byte_counts.append(count)

    return Counting, CountsOnTheHandler, CountsEachPiece, CountsButForgetsToEcho


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_byte_counts_solution_passes(impl, capsys):
    solution, *_ = counting_handlers(impl)
    out = passes(lesson01.check_byte_counts, solution, capsys)
    assert "[0, 5, 3000]" in out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_byte_counts_kept_on_the_handler_are_reported(impl):
    _, on_handler, _, _ = counting_handlers(impl)
    message = fails_with(lesson01.check_byte_counts, on_handler)
    assert message == ("on socketserver, after three connections sending 0, 5 and "
                       "3000 bytes, server.byte_counts is [], expected [0, 5, 3000].")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_byte_counts_per_piece_are_reported(impl):
    _, _, per_piece, _ = counting_handlers(impl)
    message = fails_with(lesson01.check_byte_counts, per_piece)
    # How the 3000 bytes were cut into pieces varies; the first two counts do not.
    assert message.startswith("on socketserver, after three connections sending "
                              "0, 5 and 3000 bytes, server.byte_counts is [5, ")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_byte_counts_without_echo_are_reported(impl):
    *_, no_echo = counting_handlers(impl)
    message = fails_with(lesson01.check_byte_counts, no_echo)
    assert message == ("on socketserver the handler sent back 0 bytes for a 5-byte "
                       "message: it should still echo every byte.")
