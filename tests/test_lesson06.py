"""Lesson 06's bug tests and exercise checks.

Each bug test must fail, with one sentence naming the mistake, on the stage
of the first echo server that still has that mistake, and on the other
plausible ways to get it wrong; and pass once it is fixed.  Each exercise
check must pass on the worked solution and fail on at least two plausible
wrong answers.  Everything is bounded: a handler that spins is stopped by
the watched connection, one that waits by its timeout.  The leak guard in
conftest.py checks that nothing is left behind, whichever way a check ends.
"""

import codecs
import re
import socket
import socketserver
import struct
import threading
import types

import pytest

from lesson_checks import accepted_pair, fails_with, passes
from sockserv.examples import echo
from sockserv.teach import lesson06
from sockserv.teach.checks import ExerciseFailed
from sockserv.teach.harness import IMPLEMENTATIONS, LOCALHOST, read_all, serving

MAX_LINE = lesson06.MAX_LINE
MAX_FRAME = lesson06.MAX_FRAME


# -- the stages of the lesson's first echo server -----------------------------------


class FirstEchoHandler(socketserver.BaseRequestHandler):
    """The first server: flag set only in finish(), b'' not handled, send(), decode."""

    def setup(self):
        self.done = False

    def handle(self):
        while not self.done:
            data = self.request.recv(1024)
            message = data.decode("utf-8")
            self.request.send(("ack: " + message).encode("utf-8"))

    def finish(self):
        self.done = True


class EndingEchoHandler(socketserver.BaseRequestHandler):
    """Fix 1: stops at b''; still send()."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if data == b"":
                break
            message = data.decode("utf-8")
            self.request.send(("ack: " + message).encode("utf-8"))


class SendallEchoHandler(socketserver.BaseRequestHandler):
    """Fix 2: sendall(); still decodes each read."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if data == b"":
                break
            message = data.decode("utf-8")
            self.request.sendall(("ack: " + message).encode("utf-8"))


class DecodingEchoHandler(socketserver.BaseRequestHandler):
    """Fix 3: an incremental decoder; still one ack per read."""

    def handle(self):
        decoder = codecs.getincrementaldecoder("utf-8")()
        while True:
            data = self.request.recv(1024)
            if data == b"":
                break
            self.request.sendall(("ack: " + decoder.decode(data)).encode("utf-8"))


class LineAckHandler(socketserver.StreamRequestHandler):
    """Fix 4: lines, bounded; the ack protocol done right."""

    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if line == b"":
                break
            if len(line) > MAX_LINE:
                self.wfile.write(b"! line too long\n")
                break
            text = line.decode("utf-8", errors="replace")
            self.wfile.write(("ack: " + text).encode("utf-8"))


class EchoHandler(socketserver.BaseRequestHandler):
    """The end point: RFC 862."""

    def handle(self):
        while True:
            data = self.request.recv(65536)
            if data == b"":
                break
            self.request.sendall(data)


# -- wrong answers to the bug tests ----------------------------------------------------


class QuietSpinHandler(socketserver.BaseRequestHandler):
    """Skips empty reads instead of stopping: spins without sending anything."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if data:
                self.request.sendall(data)


class ReadlineSpinHandler(socketserver.StreamRequestHandler):
    """Reads lines for ever: readline() returns b'' at EOF, every time."""

    def handle(self):
        while True:
            self.wfile.write(self.rfile.readline(MAX_LINE + 1))


class ResendWholeHandler(socketserver.BaseRequestHandler):
    """Notices a short send() but sends the whole buffer again."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            if self.request.send(data) < len(data):
                self.request.send(data)


class SendLoopHandler(socketserver.BaseRequestHandler):
    """A correct send() loop: what sendall() does."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            while data:
                data = data[self.request.send(data):]


class IgnoringDecodeHandler(SendallEchoHandler):
    """errors='ignore' on each read: the split character disappears."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            text = data.decode("utf-8", errors="ignore")
            self.request.sendall(("ack: " + text).encode("utf-8"))


class ReplacingDecodeHandler(socketserver.BaseRequestHandler):
    """errors='replace' on each read: the split character becomes two U+FFFD."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            text = data.decode("utf-8", errors="replace")
            self.request.sendall(("ack: " + text).encode("utf-8"))


class BytesAckHandler(socketserver.BaseRequestHandler):
    """No decoding, but an ack per read: b'ack: ' lands inside a character."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(b"ack: " + data)


class SplitlinesAckHandler(socketserver.BaseRequestHandler):
    """Splits each read into lines: right for merged lines, wrong for a split one."""

    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            for line in data.splitlines(keepends=True):
                self.request.sendall(b"ack: " + line)


class EchoAtEndHandler(socketserver.BaseRequestHandler):
    """Collects everything and echoes it once the client has closed its side."""

    def handle(self):
        received = b""
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            received += data
        self.request.sendall(received)


class LineEchoHandler(socketserver.StreamRequestHandler):
    """Echoes bytes line by line: a partial line waits for its newline."""

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class TextEchoHandler(socketserver.StreamRequestHandler):
    """Echoes lines as text: bytes that are not UTF-8 raise."""

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.decode("utf-8").encode("utf-8"))


# -- the watched connection -------------------------------------------------------


def watched_pair(max_piece=None):
    """(client, watched server-side connection); the caller closes both."""
    client, conn = accepted_pair()
    return client, lesson06._Watched.watching(conn, 5, max_piece)


def test_watched_connection_cuts_reads_and_counts_empty_reads():
    client, watched = watched_pair(max_piece=3)
    with client, watched:
        client.sendall(b"abcdefg")
        client.shutdown(socket.SHUT_WR)
        pieces = []
        while True:
            piece = watched.recv(1024)
            if not piece:
                break
            pieces.append(piece)
        assert pieces == [b"abc", b"def", b"g"]
        buffer = bytearray(8)
        for _ in range(lesson06.MAX_EMPTY_READS - 1):
            assert watched.recv_into(buffer) == 0
        assert not watched.spun
        with pytest.raises(lesson06.ReadAfterEOF):
            watched.recv(1024)
        assert watched.spun


def test_watched_send_takes_a_piece_and_notes_lost_bytes():
    client, watched = watched_pair()
    with client, watched:
        assert watched.send(b"x" * 250) == lesson06.SEND_PIECE
        watched.send(b"next")                         # the other 150 are dropped
        assert watched.lost == (250, lesson06.SEND_PIECE)


def test_watched_send_accepts_a_loop_that_sends_the_rest():
    client, watched = watched_pair()
    with client, watched:
        data = memoryview(b"y" * 250)
        while data:
            data = data[watched.send(data):]
        watched.sendall(b"z" * 250)
        watched.finished()
        assert watched.lost is None
        watched.send(b"w" * 250)
        watched.finished()                            # the handler returned with 150 unsent
        assert watched.lost == (250, lesson06.SEND_PIECE)


# -- the bug tests -------------------------------------------------------------------


def test_ends_at_eof_passes_once_fixed(capsys):
    for handler in (EndingEchoHandler, LineAckHandler, EchoHandler):
        passes(lesson06.test_ends_at_eof, handler, capsys=capsys)


@pytest.mark.parametrize("handler", [FirstEchoHandler, QuietSpinHandler,
                                     ReadlineSpinHandler])
def test_ends_at_eof_fails_on_a_loop_that_never_ends(handler):
    fails_with(lesson06.test_ends_at_eof, handler, words="stop when recv() returns b''")


def test_sends_everything_passes_with_sendall_or_a_send_loop(capsys):
    for handler in (SendallEchoHandler, SendLoopHandler, LineAckHandler):
        passes(lesson06.test_sends_everything, handler, capsys=capsys)


@pytest.mark.parametrize("handler", [EndingEchoHandler, ResendWholeHandler])
def test_sends_everything_fails_when_bytes_of_a_short_send_are_lost(handler):
    message = fails_with(lesson06.test_sends_everything, handler, words="sendall() sends it all")
    assert f"took {lesson06.SEND_PIECE} of them" in message


def test_split_character_passes_with_a_decoder_lines_or_bytes(capsys):
    for handler in (DecodingEchoHandler, LineAckHandler, EchoHandler):
        passes(lesson06.test_split_character, handler, capsys=capsys)


@pytest.mark.parametrize("handler, words", [
    (SendallEchoHandler, "a read ended inside a character"),
    (IgnoringDecodeHandler, "has lost a character"),
    (ReplacingDecodeHandler, "has lost a character"),
    (BytesAckHandler, "not valid UTF-8"),
])
def test_split_character_fails_when_a_character_is_cut(handler, words):
    fails_with(lesson06.test_split_character, handler, words=words)


def test_one_reply_per_line_passes_on_lines(capsys):
    passes(lesson06.test_one_reply_per_line, LineAckHandler, capsys=capsys)


@pytest.mark.parametrize("handler, words", [
    (DecodingEchoHandler, "may return two messages"),
    (SplitlinesAckHandler, "may return part of a message"),
    (EchoHandler, "may return two messages"),
])
def test_one_reply_per_line_fails_on_one_ack_per_read(handler, words):
    fails_with(lesson06.test_one_reply_per_line, handler, words=words)


@pytest.mark.parametrize("label", IMPLEMENTATIONS)
def test_rfc862_passes_on_echo_and_on_the_course_echo(label, capsys):
    passes(lesson06.test_rfc862, EchoHandler, capsys=capsys)
    passes(lesson06.test_rfc862, echo.handler_class(IMPLEMENTATIONS[label]), capsys=capsys)


@pytest.mark.parametrize("handler, words", [
    (LineAckHandler, "adds nothing"),
    (TextEchoHandler, "not only UTF-8 text"),
    (EchoAtEndHandler, "as it arrives"),
    (LineEchoHandler, "as it arrives"),
    (FirstEchoHandler, "not only UTF-8 text"),
])
def test_rfc862_fails_on_what_is_not_an_echo(handler, words):
    fails_with(lesson06.test_rfc862, handler, words=words)


def test_every_stage_fails_on_its_own_bug_first():
    """The lesson's order: each stage passes the tests before it and fails the next."""
    tests = [lesson06.test_ends_at_eof, lesson06.test_sends_everything,
             lesson06.test_split_character, lesson06.test_one_reply_per_line,
             lesson06.test_rfc862]
    stages = [FirstEchoHandler, EndingEchoHandler, SendallEchoHandler,
              DecodingEchoHandler, LineAckHandler]
    for index, stage in enumerate(stages):
        for earlier in tests[:index]:
            earlier(stage)
        with pytest.raises(ExerciseFailed):
            tests[index](stage)


# -- exercise 1: upper-case lines -------------------------------------------------


class SolutionUpperLineHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if line == b"":
                break
            if len(line) > MAX_LINE:
                self.wfile.write(b"! line too long\n")
                break
            text = line.decode("utf-8", errors="replace")
            self.wfile.write(text.upper().encode("utf-8"))


class ChunkUpper(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data.decode().upper().encode())


class BytesUpper(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                break
            if len(line) > MAX_LINE:
                self.wfile.write(b"! line too long\n")
                break
            self.wfile.write(line.upper())


class IgnoreUpper(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data.decode(errors="ignore").upper().encode())


class UnboundedUpper(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.decode().upper().encode())


class SpinningUpper(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                self.wfile.write(b"! line too long\n")
                break
            self.wfile.write(line.decode().upper().encode())


class OffByOneUpper(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                break
            if len(line) >= MAX_LINE:
                self.wfile.write(b"! line too long\n")
                break
            self.wfile.write(line.decode().upper().encode())


class NoTailUpper(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE:
                    self.wfile.write(b"! line too long\n")
                break
            self.wfile.write(line.decode().upper().encode())


class PlaceholderUpper(socketserver.StreamRequestHandler):
    def handle(self):
        ...


def test_upper_lines_passes_the_solution(capsys):
    passes(lesson06.check_upper_lines, SolutionUpperLineHandler, capsys=capsys)


@pytest.mark.parametrize("handler, words", [
    (ChunkUpper, "a read ended inside a character"),
    (BytesUpper, "bytes.upper() changes ASCII letters only"),
    (IgnoreUpper, "expected 'GRÜSS GOTT"),
    (UnboundedUpper, "readline(limit)"),
    (SpinningUpper, "stop when recv() returns b''"),
    (OffByOneUpper, "refuse only a longer one"),
    (NoTailUpper, "also a last one without a newline"),
    (PlaceholderUpper, "fill in the ... in UpperLineHandler first"),
])
def test_upper_lines_rejects_wrong_answers(handler, words):
    fails_with(lesson06.check_upper_lines, handler, words=words)


def test_upper_lines_rejects_an_instance_or_a_function():
    fails_with(lesson06.check_upper_lines, lambda: None, words="pass the handler class itself")


# -- exercise 2: length-prefixed frames ----------------------------------------------


class BoundedFrameAck(socketserver.StreamRequestHandler):
    """Acks each frame; ends the connection at a frame whose length it refuses.

    ``refuses(length)`` and ``refuses_before_reading`` are where the right
    answer and the wrong answers below differ; the reading loop is the same.
    """

    #: False for the answer that reads the payload first and checks its length after.
    refuses_before_reading = True

    @staticmethod
    def refuses(length):
        return length > MAX_FRAME

    def handle(self):
        while True:
            header = self.rfile.read(4)
            if len(header) < 4:
                break
            (length,) = struct.unpack("!I", header)
            if self.refuses_before_reading and self.refuses(length):
                break
            payload = self.rfile.read(length)
            if len(payload) < length or self.refuses(length):
                break
            self.wfile.write(lesson06.frame(b"ack: " + payload))


SolutionFrameAckHandler = BoundedFrameAck


class OneRecvFrame(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            (length,) = struct.unpack("!I", data[:4])
            self.request.sendall(lesson06.frame(b"ack: " + data[4:4 + length]))


class RecvHeaderFrame(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            header = self.request.recv(4)
            if not header:
                break
            (length,) = struct.unpack("!I", header)
            if length > MAX_FRAME:
                break
            payload = self.request.recv(length)
            self.request.sendall(lesson06.frame(b"ack: " + payload))


class LittleEndianFrame(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            header = self.rfile.read(4)
            if len(header) < 4:
                break
            (length,) = struct.unpack("<I", header)
            if length > MAX_FRAME:
                break
            reply = b"ack: " + self.rfile.read(length)
            self.wfile.write(struct.pack("<I", len(reply)) + reply)


class PayloadLengthFrame(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            header = self.rfile.read(4)
            if len(header) < 4:
                break
            (length,) = struct.unpack("!I", header)
            if length > MAX_FRAME:
                break
            self.wfile.write(header + b"ack: " + self.rfile.read(length))


class TrustingFrame(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            header = self.rfile.read(4)
            if len(header) < 4:
                break
            (length,) = struct.unpack("!I", header)
            self.wfile.write(lesson06.frame(b"ack: " + self.rfile.read(length)))


class NoEofFrame(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            (length,) = struct.unpack("!I", self.rfile.read(4))
            if length > MAX_FRAME:
                break
            self.wfile.write(lesson06.frame(b"ack: " + self.rfile.read(length)))


class FrameOffByOne(BoundedFrameAck):
    """Refuses a frame of exactly MAX_FRAME bytes: >= where > was meant."""

    refuses = staticmethod(lambda length: length >= MAX_FRAME)


class HeaderCountedFrame(BoundedFrameAck):
    """Counts the 4-byte header in the bound, so the largest payload allowed is refused."""

    refuses = staticmethod(lambda length: 4 + length > MAX_FRAME)


class SixteenMiBFrame(BoundedFrameAck):
    """Refuses only what the exercise's example announces (16 MiB), not all over MAX_FRAME."""

    refuses = staticmethod(lambda length: length >= 16 * 1024 * 1024)


class ReadFirstFrame(BoundedFrameAck):
    """Reads the payload, then checks its length: it waits for whatever a header claims."""

    refuses_before_reading = False


def test_length_prefixed_passes_the_solution(capsys):
    passes(lesson06.check_length_prefixed, SolutionFrameAckHandler, capsys=capsys)


@pytest.mark.parametrize("handler, words", [
    (OneRecvFrame, "fewer bytes than asked for"),
    (RecvHeaderFrame, "fewer bytes than asked for"),
    (NoEofFrame, "none at end of stream"),
    (LittleEndianFrame, "got back b''"),
    (PayloadLengthFrame, "expected b'\\x00\\x00\\x00\\nack: hello"),
    (TrustingFrame, "refuse a length over MAX_FRAME"),
])
def test_length_prefixed_rejects_wrong_answers(handler, words):
    fails_with(lesson06.check_length_prefixed, handler, words=words)


@pytest.mark.parametrize("handler, words", [
    (FrameOffByOne, f"a frame of exactly {MAX_FRAME} bytes got no reply"),
    (HeaderCountedFrame, "so refuse only a longer one"),
    (SixteenMiBFrame, f"a frame of {MAX_FRAME + 1} bytes got the reply b'\\x00\\x01"),
], ids=["off-by-one", "header-counted", "only-16-MiB"])
def test_length_prefixed_holds_the_bound_at_max_frame(handler, words):
    """A frame of exactly MAX_FRAME bytes is answered, one of MAX_FRAME + 1 refused."""
    fails_with(lesson06.check_length_prefixed, handler, words=words)


def test_length_prefixed_rejects_reading_before_refusing(monkeypatch):
    """Whole frames over MAX_FRAME do not tell this one apart: a header alone does.

    The handler waits for the 16 MiB that never come until its connection
    times out; a shorter timeout says the same sooner.
    """
    monkeypatch.setattr(lesson06, "WATCHED_TIMEOUT", 0.25)
    fails_with(lesson06.check_length_prefixed, ReadFirstFrame,
               words="refuse a length over MAX_FRAME and close the connection at once")


def test_frame_is_a_big_endian_length_then_the_payload():
    assert lesson06.frame(b"hi") == b"\x00\x00\x00\x02hi"
    assert lesson06.frame(b"") == b"\x00\x00\x00\x00"


def test_sentences_name_no_address():
    """A failure says what happened, never this run's port or address."""
    message = fails_with(lesson06.test_ends_at_eof, FirstEchoHandler, words="b''")
    assert not re.search(r"127\.0\.0\.1|\d{4,5}\)", message), message


def test_talker_keeps_a_reply_that_came_before_a_reset():
    """A server that answers and closes while the client still sends resets the
    connection; the client still gets the answer (this happened under load)."""
    with socket.socket() as listener:
        listener.bind(LOCALHOST)
        listener.listen()
        address = listener.getsockname()
        client = lesson06._talker(b"x" * 4_000_000)
        target = types.SimpleNamespace(server_address=address, own_ports=set())
        outcome = {}

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(10)
                conn.sendall(b"bye\n")   # then close with unread bytes: a reset

        server = threading.Thread(target=serve)
        server.start()
        try:
            outcome["reply"] = client(target)
        finally:
            server.join(5)
    assert outcome["reply"] == b"bye\n"


def test_a_stray_connection_is_closed_unanswered():
    """Only the check's own clients are served: a connection from elsewhere (another
    program that reused the port) is closed without a reply, and the check goes on."""
    server_class = lesson06._server_class(socketserver, None)
    with server_class(LOCALHOST, EchoHandler) as server:
        server.watched, server.own_ports = [], set()
        with serving(server):
            with socket.create_connection(server.server_address, timeout=5) as stray:
                # Served, EchoHandler would wait for bytes or an end: read_all() would time out.
                assert read_all(stray) == b""
            with lesson06._connect(server) as own:
                own.sendall(b"from the check")
                own.shutdown(socket.SHUT_WR)
                assert read_all(own) == b"from the check"
    assert server.errors == []
