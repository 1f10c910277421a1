"""Lesson 01's exercise checks: they pass on the worked solutions and fail,
with one sentence, on the wrong answers a learner plausibly writes -- above
all the loop that ignores ``recv() == b''``, which must be reported, not
left spinning, and a handler that never returns, which must fail within a
few seconds.

The leak guard in conftest.py checks that no check leaves a thread or a
socket behind, whichever way it ends.
"""

import codecs
import socket
import threading

import pytest

from lesson_checks import accepted_pair, fails_with, passes
from sockserv.teach import lesson01
from sockserv.teach.harness import CLIENT_TIMEOUT, IMPLEMENTATIONS, MAX_EMPTY_READS

IMPLS = [pytest.param(impl, id=label) for label, impl in IMPLEMENTATIONS.items()]

#: Seconds a check waits, in the tests below, for what the wrong answer under test can
#: never do (reply to the end, return, let the server stop, see a fourth client), in place
#: of the lesson's own bounds: sized for a busy machine, they only decide how soon a hang
#: is reported.  A bound that a right answer, or the check's own setup, must meet keeps
#: the lesson's value.
GIVE_UP = 0.5


def client_gives_up_once(ready, monkeypatch):
    """Make check_upper_echo's client, when its reply times out, wait for ready first.

    ready is an Event that the test's handler sets once it is where it hangs.  A handler
    that a busy machine scheduled late may not be there yet when a short reply bound
    passes; the check would then look too early and report another fault than the one
    under test.  Waiting here (within CLIENT_TIMEOUT) keeps the check's order of events
    whatever the load, while the bound itself stays short.
    """
    real_talk = lesson01.talk

    def talk(*args, **kwargs):
        try:
            return real_talk(*args, **kwargs)
        except TimeoutError:
            ready.wait(CLIENT_TIMEOUT)
            raise

    monkeypatch.setattr(lesson01, "talk", talk)


# -- the watched connection -------------------------------------------------


def test_watched_socket_allows_a_few_empty_reads_then_raises():
    client, conn = accepted_pair()
    with client, lesson01._watch(conn) as watched:
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
        for _ in range(MAX_EMPTY_READS - 1):
            assert watched.recv_into(buffer) == 0
        assert not watched.spun
        with pytest.raises(lesson01.ReadAfterEOF):
            watched.recv(1024)
        assert watched.spun
        # Not an OSError: code that catches socket errors must not swallow it.
        assert not issubclass(lesson01.ReadAfterEOF, OSError)


def test_watched_socket_cuts_reads_into_pieces():
    client, conn = accepted_pair()
    with client, lesson01._watch(conn, max_piece=3) as watched:
        client.sendall(b"abcdefgh")
        client.shutdown(socket.SHUT_WR)
        pieces = []
        while piece := watched.recv(1024):
            pieces.append(piece)
        assert pieces == [b"abc", b"def", b"gh"]


# -- exercise 1: a raw echo loop that survives a bad client ------------------


def sturdy_solution(listener, clients):
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError as error:
                errors.append(error)
    return errors


def sturdy_with_finally(listener, clients):
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        try:
            while True:
                data = conn.recv(1024)
                if data == b"":
                    break
                conn.sendall(data)
        except ConnectionError as error:
            errors.append(error)
        finally:
            conn.close()
    return errors


def sturdy_starter(listener, clients):
    """The notebook's raw_echo_server with a list it never fills: dies at the reset."""
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        while True:
            data = conn.recv(1024)
            if data == b"":
                break
            conn.sendall(data)
        conn.close()
    return errors


def sturdy_try_around_everything(listener, clients):
    """The try wraps the whole loop: the first error ends the service."""
    errors = []
    try:
        for _ in range(clients):
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)
    except OSError as error:
        errors.append(error)
    return errors


def sturdy_forgets_to_close_on_error(listener, clients):
    """close() on the happy path only."""
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
            conn.close()
        except OSError as error:
            errors.append(error)
    return errors


def sturdy_swallows_errors(listener, clients):
    """Carries on, but reports nothing."""
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError:
                pass
    return []


def sturdy_spins_and_catches_everything(listener, clients):
    """Ignores b'' and catches Exception, which swallows the watched socket's alarm."""
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            try:
                while True:
                    conn.sendall(conn.recv(1024))
            except Exception as error:
                errors.append(error)
    return errors


def sturdy_serves_forever(listener, clients):
    """Ignores `clients`: accepts again after the last client."""
    errors = []
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError as error:
                errors.append(error)


def sturdy_returns_names(listener, clients):
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError as error:
                errors.append(type(error).__name__)
    return errors


def sturdy_placeholder(listener, clients):
    errors = []
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except ... as error:
                errors.append(error)
    return errors


@pytest.mark.parametrize("solution", [sturdy_solution, sturdy_with_finally])
def test_sturdy_echo_solutions_pass(solution, capsys):
    out = passes(lesson01.check_sturdy_echo, solution, capsys=capsys)
    assert "returned the second client's ConnectionResetError" in out


def test_sturdy_echo_starter_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_starter)
    assert message == ("sturdy_echo_server() raised ConnectionResetError when the "
                       "second client reset its connection, so the third client was "
                       "never served: catch OSError around each client, close that "
                       "connection and go on.")


def test_sturdy_echo_try_around_everything_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_try_around_everything)
    assert message.startswith("the third client sent 300 bytes and got back b''"), message


def test_sturdy_echo_connection_left_open_on_error_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_forgets_to_close_on_error)
    assert message.startswith("the connection of the second client (the one that "
                              "reset) was still open when"), message


def test_sturdy_echo_that_swallows_errors_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_swallows_errors)
    assert message == ("sturdy_echo_server() returned [], expected a list holding "
                       "the one OSError of the second client.")


def test_sturdy_echo_returning_names_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_returns_names)
    assert message == ("sturdy_echo_server() returned ['ConnectionResetError'], "
                       "expected a list holding the one OSError of the second client.")


def test_sturdy_echo_that_spins_is_reported_even_when_it_catches_everything():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_spins_and_catches_everything)
    assert "kept calling recv() after it returned b''" in message


def test_sturdy_echo_that_accepts_forever_is_reported(monkeypatch):
    class FourthAcceptGivesUpSoon(lesson01._WatchedListener):
        """Only the accept() after the last client waits GIVE_UP: no client comes for it.

        The accept()s before it wait for the check's clients, so they keep WATCHED_TIMEOUT.
        """

        def accept(self):
            if self.accept_calls == lesson01.STURDY_CLIENTS:
                self.settimeout(GIVE_UP)
            return super().accept()

    monkeypatch.setattr(lesson01, "_WatchedListener", FourthAcceptGivesUpSoon)
    message = fails_with(lesson01.check_sturdy_echo, sturdy_serves_forever)
    assert message == ("sturdy_echo_server() called accept() again after its 3 "
                       "clients: serve `clients` connections, then return.")


def test_sturdy_echo_placeholder_is_reported():
    message = fails_with(lesson01.check_sturdy_echo, sturdy_placeholder)
    assert message == "fill in the ... in sturdy_echo_server first."


def test_sturdy_echo_check_wants_the_function():
    message = fails_with(lesson01.check_sturdy_echo, None)
    assert "pass the function itself" in message


# -- exercise 2: an upper-casing echo of UTF-8 text ----------------------------


def test_upper_text_makes_the_wrong_answers_visible():
    """The data itself: capitals, letters outside ASCII, a character split between chunks."""
    text = lesson01.UPPER_TEXT
    assert text.swapcase() != text.upper()
    assert text.encode().upper() != text.upper().encode()
    first, second = lesson01.UPPER_CHUNKS
    with pytest.raises(UnicodeDecodeError):
        first.decode("utf-8")
    assert first.decode("utf-8", "ignore") + second.decode("utf-8", "ignore") != text


def upper_handlers(impl):
    """The solutions and the wrong answers a learner plausibly writes."""

    def echo_each_piece(transform):
        class Handler(impl.BaseRequestHandler):
            def handle(self):
                while True:
                    data = self.request.recv(1024)
                    if data == b"":
                        break
                    self.request.sendall(transform(data))
        return Handler

    class IncrementalDecoder(impl.BaseRequestHandler):
        def handle(self):
            decoder = codecs.getincrementaldecoder("utf-8")()
            while data := self.request.recv(1024):
                self.request.sendall(decoder.decode(data).upper().encode("utf-8"))
            self.request.sendall(decoder.decode(b"", final=True).upper().encode("utf-8"))

    class ReadAllFirst(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read().decode("utf-8").upper().encode("utf-8"))

    class Spinning(impl.BaseRequestHandler):
        def handle(self):
            decoder = codecs.getincrementaldecoder("utf-8")()
            while True:
                text = decoder.decode(self.request.recv(1024))
                self.request.sendall(text.upper().encode("utf-8"))

    class KeepsTheLastPiece(impl.BaseRequestHandler):
        """Sends a piece only once the next one has come: the last is never sent."""

        def handle(self):
            decoder = codecs.getincrementaldecoder("utf-8")()
            pending = b""
            while data := self.request.recv(1024):
                self.request.sendall(pending)
                pending = decoder.decode(data).upper().encode("utf-8")

    return {
        "solution": IncrementalDecoder,
        "read all first": ReadAllFirst,
        "bytes.upper": echo_each_piece(bytes.upper),
        "swapcase": echo_each_piece(bytes.swapcase),
        "decode each piece": echo_each_piece(lambda d: d.decode().upper().encode()),
        "decode ignore": echo_each_piece(
            lambda d: d.decode("utf-8", "ignore").upper().encode()),
        "decode replace": echo_each_piece(
            lambda d: d.decode("utf-8", "replace").upper().encode()),
        "latin-1": echo_each_piece(
            lambda d: d.decode("latin-1").upper().encode("latin-1", "replace")),
        "spinning": Spinning,
        "keeps the last piece": KeepsTheLastPiece,
    }


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["solution", "read all first"])
def test_upper_echo_solutions_pass(impl, name, capsys):
    out = passes(lesson01.check_upper_echo, upper_handlers(impl)[name], capsys=capsys)
    assert "on stdlib and on sockserv" in out


@pytest.mark.parametrize("impl", IMPLS)
def test_upper_echo_bytes_upper_is_reported(impl):
    message = fails_with(lesson01.check_upper_echo, upper_handlers(impl)["bytes.upper"])
    assert message.startswith("on stdlib the handler sent back 'GRüß GOTT, ÆRøSKøBING!"), message
    assert message.endswith("bytes.upper() changes ASCII letters only, so work on "
                            "the text (str) instead."), message


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["swapcase", "decode ignore", "decode replace", "latin-1"])
def test_upper_echo_wrong_transforms_are_reported(impl, name):
    message = fails_with(lesson01.check_upper_echo, upper_handlers(impl)[name])
    assert message.startswith("on stdlib the handler sent back '"), message
    assert message.endswith(", expected 'GRÜSS GOTT, ÆRØSKØBING! CAFÉ ÜNÏCODE\\nÉTU' "
                            "(and 18 more)."), message


@pytest.mark.parametrize("impl", IMPLS)
def test_upper_echo_decoding_each_piece_is_reported(impl):
    message = fails_with(lesson01.check_upper_echo, upper_handlers(impl)["decode each piece"])
    assert message.startswith("handle() on stdlib raised UnicodeDecodeError(\"'utf-8' codec"), message
    assert message.endswith("a character's bytes can be split between two reads."), message


@pytest.mark.parametrize("impl", IMPLS)
def test_upper_echo_that_spins_is_reported(impl):
    message = fails_with(lesson01.check_upper_echo, upper_handlers(impl)["spinning"])
    assert message.startswith("handle() on stdlib kept calling recv() after it "
                              "returned b''"), message


@pytest.mark.parametrize("impl", IMPLS)
def test_upper_echo_that_drops_the_last_piece_is_reported(impl):
    message = fails_with(lesson01.check_upper_echo,
                         upper_handlers(impl)["keeps the last piece"])
    assert message.startswith("on stdlib the handler sent back only "), message


def test_upper_echo_handler_that_never_returns_fails_in_bounded_time(monkeypatch):
    # Neither bound can be met by this handler: the reply never ends, the server never stops.
    monkeypatch.setattr(lesson01, "REPLY_TIMEOUT", GIVE_UP)
    monkeypatch.setattr(lesson01, "STOP_TIMEOUT", GIVE_UP)
    entered, release = threading.Event(), threading.Event()
    client_gives_up_once(entered, monkeypatch)

    class NeverReturns(IMPLEMENTATIONS["stdlib"].BaseRequestHandler):
        def handle(self):
            entered.set()
            release.wait(30)  # stands for "forever"; released below

    try:
        message = fails_with(lesson01.check_upper_echo, NeverReturns)
    finally:
        release.set()  # so that its thread ends, and the leak guard finds nothing
    # The sentence names the bounds in force (the lesson's own are 3 s and 3 s).
    assert message == ("handle() on stdlib never returned: the client had closed its "
                       "side and waited 0.5 s, and the server could not stop within 0.5 s.")


def test_upper_echo_handler_that_spins_and_catches_everything_is_reported(monkeypatch):
    # Neither bound can be met by this handler: the reply never ends, the server never stops.
    monkeypatch.setattr(lesson01, "REPLY_TIMEOUT", GIVE_UP)
    monkeypatch.setattr(lesson01, "STOP_TIMEOUT", GIVE_UP)
    swallowed, release = threading.Event(), threading.Event()
    client_gives_up_once(swallowed, monkeypatch)

    class SpinsAndCatches(IMPLEMENTATIONS["stdlib"].BaseRequestHandler):
        def handle(self):
            while not release.is_set():  # stands for "while True"; released below
                try:
                    self.request.sendall(self.request.recv(1024).upper())
                except Exception:
                    swallowed.set()  # swallows the watched socket's alarm, and spins on

    try:
        message = fails_with(lesson01.check_upper_echo, SpinsAndCatches)
    finally:
        release.set()  # no check can stop a thread that catches everything
    assert message.startswith("handle() on stdlib kept calling recv() after it "
                              "returned b''"), message


def test_upper_echo_handler_that_finishes_late_is_reported(monkeypatch):
    # The handler starts its wait after the client's reply bound has started, and waits
    # longer than it: that bound can be short.  The server must still stop once the
    # handler returns, so STOP_TIMEOUT keeps the lesson's value.
    monkeypatch.setattr(lesson01, "REPLY_TIMEOUT", GIVE_UP)

    class Late(IMPLEMENTATIONS["stdlib"].BaseRequestHandler):
        def handle(self):
            while data := self.request.recv(1024):
                pass
            threading.Event().wait(lesson01.REPLY_TIMEOUT + 0.5)  # then returns
            self.request.sendall(b"too late")

    message = fails_with(lesson01.check_upper_echo, Late)
    # The sentence names the bound in force (the lesson's own is 3 s).
    assert message == ("handle() on stdlib had not finished 0.5 s after the client "
                       "closed its side: stop reading when recv() returns b'', and return.")


def test_upper_echo_handler_waiting_for_more_data_is_reported():
    class WaitsForALine(IMPLEMENTATIONS["stdlib"].BaseRequestHandler):
        def handle(self):
            data = b""
            while not data.endswith(b"\n\n"):  # the client never sends a blank line
                data += self.request.recv(1024)
            self.request.sendall(data.upper())

    message = fails_with(lesson01.check_upper_echo, WaitsForALine)
    assert "kept calling recv() after it returned b''" in message


def test_upper_echo_placeholder_is_reported():
    class Placeholder(IMPLEMENTATIONS["stdlib"].BaseRequestHandler):
        def handle(self):
            while data := self.request.recv(1024):
                self.request.sendall(...)

    message = fails_with(lesson01.check_upper_echo, Placeholder)
    assert message == "fill in the ... in UpperEchoHandler first."


def test_upper_echo_check_wants_the_class():
    handler = upper_handlers(IMPLEMENTATIONS["stdlib"])["solution"]
    message = fails_with(lesson01.check_upper_echo, handler.handle)
    assert "pass the handler class itself" in message


# -- exercise 3: count the bytes of each connection ----------------------------


def counting_handlers(impl):
    """The solution and the wrong answers a learner plausibly writes."""

    def echo(handler):
        """Echo the connection; return the byte count and the piece sizes."""
        count, pieces = 0, []
        while data := handler.request.recv(1024):
            handler.request.sendall(data)
            count += len(data)
            pieces.append(len(data))
        return count, pieces

    class Counting(impl.BaseRequestHandler):
        def handle(self):
            count, _ = echo(self)
            self.server.byte_counts.append(count)

    class CountsOnTheHandler(impl.BaseRequestHandler):
        byte_counts = []  # a class attribute: the server's list stays empty

        def handle(self):
            count, _ = echo(self)
            self.byte_counts.append(count)

    class CountsEachPiece(impl.BaseRequestHandler):
        def handle(self):
            _, pieces = echo(self)
            self.server.byte_counts.extend(pieces)

    class CountsTheLastPiece(impl.BaseRequestHandler):
        def handle(self):
            _, pieces = echo(self)
            self.server.byte_counts.append(pieces[-1] if pieces else 0)

    class ReplacesTheList(impl.BaseRequestHandler):
        def handle(self):
            count, _ = echo(self)
            self.server.byte_counts = [count]

    class SkipsEmptyConnections(impl.BaseRequestHandler):
        def handle(self):
            count, _ = echo(self)
            if count:
                self.server.byte_counts.append(count)

    class CountsButForgetsToEcho(impl.BaseRequestHandler):
        def handle(self):
            count = 0
            while data := self.request.recv(1024):
                count += len(data)
            self.server.byte_counts.append(count)

    return {"solution": Counting, "on the handler": CountsOnTheHandler,
            "each piece": CountsEachPiece, "last piece": CountsTheLastPiece,
            "replaces": ReplacesTheList, "skips empty": SkipsEmptyConnections,
            "no echo": CountsButForgetsToEcho}


@pytest.mark.parametrize("impl", IMPLS)
def test_byte_counts_solution_passes(impl, capsys):
    out = passes(lesson01.check_byte_counts, counting_handlers(impl)["solution"], capsys=capsys)
    assert "[0, 5, 3000]" in out


PREFIX = "on stdlib, after three connections sending 0, 5 and 3000 bytes, server.byte_counts is "


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name, counts", [
    ("on the handler", "[]"),
    ("replaces", "[3000]"),
    ("skips empty", "[5, 3000]"),
])
def test_byte_counts_wrong_answers_are_reported(impl, name, counts):
    message = fails_with(lesson01.check_byte_counts, counting_handlers(impl)[name])
    assert message == f"{PREFIX}{counts}, expected [0, 5, 3000].", message


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name, start", [("each piece", "[5, "), ("last piece", "[0, 5, ")])
def test_byte_counts_of_pieces_are_reported(impl, name, start):
    # How the 3000 bytes are cut into reads of at most COUNT_PIECE bytes varies;
    # that they take several reads does not.
    message = fails_with(lesson01.check_byte_counts, counting_handlers(impl)[name])
    assert message.startswith(PREFIX + start), message
    assert message.endswith(", expected [0, 5, 3000]."), message


@pytest.mark.parametrize("impl", IMPLS)
def test_byte_counts_without_echo_are_reported(impl):
    message = fails_with(lesson01.check_byte_counts, counting_handlers(impl)["no echo"])
    assert message == ("on stdlib the handler sent back 0 bytes for a 5-byte "
                       "message: it should still echo every byte.")
