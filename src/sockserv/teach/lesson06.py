"""Bug tests and exercise checks for lesson 06, "The echo server".

The lesson starts from a first echo server with the mistakes such servers
usually have and fixes them one at a time.  Each mistake has a *bug test*
here, a function the learner runs on a handler class: it passes with one
"Check passed" line, or fails with one sentence that says what went wrong
and why (``ExerciseFailed``), within a few seconds.

* ``test_ends_at_eof``: the handler must stop when the client closes its
  side (``recv()`` returns ``b''``), not go round its loop for ever.
* ``test_sends_everything``: every byte handed to ``send()`` must go out;
  the connection's ``send()`` takes at most ``SEND_PIECE`` bytes a call, as
  a full send buffer may, so a handler that ignores what ``send()``
  returns loses the rest.
* ``test_split_character``: a character whose UTF-8 bytes arrive in two
  reads must come back whole; decoding each read raises or loses it.
* ``test_one_reply_per_line``: the ``ack:`` protocol answers each line, so
  two lines in one read and one line over several reads must each get one
  ``ack:``.
* ``test_rfc862``: the end point, an echo as RFC 862 defines it: every byte
  back unchanged, as it arrives, until the client closes.

And the exercises' checks: ``check_upper_lines`` (a line-based upper-case
echo that survives split characters and bounds its lines) and
``check_length_prefixed`` (frames with a 4-byte length in front).

All of them run the handler on ``impl.TCPServer`` of both implementations,
on a *watched* connection (lesson 01's ``harness.WatchedConnection``, with
sends cut too): a real socket whose reads may be cut into small pieces (a
real network may cut a stream anywhere; this makes the cut certain), whose
``send()`` takes at most ``SEND_PIECE`` bytes, which counts the empty reads
(a loop that ignores ``b''`` makes millions, and is stopped with
``ReadAfterEOF``) and which has a timeout, so a handler that waits for data
that never comes fails too.  Serving, bounds and reading
come from ``sockserv.teach.harness``.  The clients are ``harness.talk()``
with two steps more: each binds before it connects, so that the server
serves only the check's own clients (a stray connection from another
program that has just reused the port is closed unanswered), and a reply
that arrived before the server reset the connection is kept.
"""

import socket
import struct
import time

from .checks import ExerciseFailed, check, describe_error, passed, preview, require_filled_in
from .harness import (IMPLEMENTATIONS, LOCALHOST, MAX_EMPTY_READS, STOP_TIMEOUT, ReadAfterEOF,
                      TimedOut, WatchedConnection, close_hard, read_all, recording_errors,
                      serving)

__all__ = ["MAX_LINE", "MAX_FRAME", "SEND_PIECE", "test_ends_at_eof",
           "test_sends_everything", "test_split_character", "test_one_reply_per_line",
           "test_rfc862", "check_upper_lines", "check_length_prefixed", "frame",
           "ReadAfterEOF"]

#: Seconds the handler may wait on a watched connection before its read or
#: write raises TimeoutError.  Shorter than REPLY_TIMEOUT, so the handler's
#: side gives up first and the check can say which side was waiting.
WATCHED_TIMEOUT = 2.0
#: Seconds a test's client waits for the whole reply.
REPLY_TIMEOUT = WATCHED_TIMEOUT + 1.0
#: Most bytes one send() on a watched connection takes (sendall() takes all).
SEND_PIECE = 100
#: Longest line, newline included, the line-based handlers accept.
MAX_LINE = 1024
#: Longest payload a length-prefixed frame may announce (exercise 2).
MAX_FRAME = 65536
#: What a line-based handler answers to a line longer than MAX_LINE.
TOO_LONG = b"! line too long\n"


# -- the watched connection -------------------------------------------------------


class _Watched(WatchedConnection):
    """A watched connection (reads cut and empty reads counted) that cuts sends too.

    ``lost`` holds (given, taken) for the first send() whose remainder the
    handler never sent; ``spun`` is True once reads after EOF went past
    MAX_EMPTY_READS.
    """

    lost = None
    _unsent = b""

    def _settle(self, data):
        """Note bytes lost if data does not carry on where a short send() stopped."""
        if self._unsent and bytes(data[:len(self._unsent)]) != self._unsent:
            self._note_lost()

    def _note_lost(self):
        if self.lost is None:
            self.lost = self._short
        self._unsent = b""

    def send(self, data, *flags):
        """Like socket.send, but takes at most SEND_PIECE bytes."""
        self._settle(data)
        data = bytes(data)
        taken = super().send(data[:SEND_PIECE], *flags)
        self._unsent = data[taken:]
        self._short = (len(data), taken)
        return taken

    def sendall(self, data, *flags):
        """Like socket.sendall (which sends everything)."""
        self._settle(data)
        self._unsent = b""
        return super().sendall(data, *flags)

    def finished(self):
        """Call once the handler has returned: bytes still unsent count as lost."""
        if self._unsent:
            self._note_lost()


def _server_class(impl, max_piece):
    """impl.TCPServer that watches its connections and records handler errors."""

    class WatchingTCPServer(recording_errors(impl.TCPServer)):
        def get_request(self):
            conn, client_address = super().get_request()
            watched = _Watched.watching(conn, WATCHED_TIMEOUT, max_piece)
            self.watched.append(watched)
            return watched, client_address

        def verify_request(self, request, client_address):
            # Only the check's own clients: a stray connection from another
            # program to this port (one that has just reused it) is closed.
            return client_address[1] in self.own_ports

        def shutdown_request(self, request):
            request.finished()
            super().shutdown_request(request)

    return WatchingTCPServer


def _describe(error, who, waiting=None):
    """One sentence for an exception the handler raised.

    waiting, if given, is what to say when the handler timed out waiting.
    """
    if isinstance(error, ReadAfterEOF):
        return _spun(who)
    if isinstance(error, UnicodeDecodeError) and error.reason == "unexpected end of data":
        return (f"{who} raised {describe_error(error)}: a read ended inside a "
                f"character, because one recv() returns some bytes, not whole "
                f"characters or messages.")
    if isinstance(error, UnicodeDecodeError):
        return (f"{who} raised {describe_error(error)}: a client may send any "
                f"bytes, not only UTF-8 text.")
    if isinstance(error, struct.error):
        return (f"{who} raised {describe_error(error)}: a read may return fewer "
                f"bytes than asked for (part of a header), and none at end of "
                f"stream.")
    if isinstance(error, TimeoutError) and waiting:
        return f"{who} {waiting}"
    if isinstance(error, TimeoutError):
        return (f"{who} waited {WATCHED_TIMEOUT:g} s for bytes the client never "
                f"sent: read what arrives, and stop at end of stream.")
    return f"{who} raised {describe_error(error)}."


def _spun(who):
    return (f"{who} went round its loop again each time recv() returned b'' "
            f"(the client had closed its side), {MAX_EMPTY_READS + 1} times "
            f"before this test stopped it: nothing ends the loop, so stop when "
            f"recv() returns b''.")


def _check_class(handler_class, name):
    check(isinstance(handler_class, type) and hasattr(handler_class, "handle"),
          f"pass the handler class itself ({name}), not an instance or a function.")
    require_filled_in(handler_class, name)


def _run(label, impl, handler_class, conversations, *, max_piece=None, waiting=None):
    """Serve handler_class on impl for the conversations; return (replies, server).

    Each conversation is a function client(server) -> bytes, run one
    after the other (usually one made by _talker()).  Every way
    the handler can go wrong ends in ExerciseFailed within a bound: it
    spun, raised, lost bytes of a short send, or never returned.
    """
    who = f"handle() on {label}"
    with _server_class(impl, max_piece)(LOCALHOST, handler_class) as server:
        server.watched = []
        server.own_ports = set()
        replies = []
        stuck = False
        try:
            with serving(server, stop_timeout=STOP_TIMEOUT):
                for client in conversations:
                    try:
                        replies.append(client(server))
                    except OSError as error:
                        # The handler raised or gave up: the server closed or
                        # reset the connection.  The reasons are looked at below.
                        replies.append(getattr(error, "received", b""))
                        if isinstance(error, TimeoutError):
                            stuck = True
                            break
        except TimedOut:
            check(not any(conn.spun for conn in server.watched), _spun(who))
            raise ExerciseFailed(
                f"{who} never returned: the client waited {REPLY_TIMEOUT:g} s and "
                f"the server could not stop within {STOP_TIMEOUT:g} s.") from None
        finally:
            for conn in server.watched:
                close_hard(conn)
    check(not any(conn.spun for conn in server.watched), _spun(who))
    if server.errors:
        raise ExerciseFailed(_describe(server.errors[0][1], who, waiting))
    check(not stuck,
          f"{who} had not closed the connection {REPLY_TIMEOUT:g} s after the "
          f"client closed its side: stop at end of stream, and return.")
    for conn in server.watched:
        if conn.lost is not None:
            given, taken = conn.lost
            raise ExerciseFailed(
                f"{who} gave send() {given} bytes, send() took {taken} of them and "
                f"the other {given - taken} were never sent: send() may take only "
                f"part of what it is given (it returns how much), sendall() "
                f"sends it all.")
    return replies, server


def _connect(server):
    """A client socket connected to server, its local port noted in server.own_ports.

    harness.connect() with one step more: the socket is bound before it
    connects, so that the server knows its port by the time it accepts.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(REPLY_TIMEOUT)
        sock.bind(LOCALHOST)
        server.own_ports.add(sock.getsockname()[1])
        sock.connect(server.server_address)
    except BaseException:
        sock.close()
        raise
    return sock


def _talker(*chunks, half_close=True):
    """A conversation for _run(): send the chunks, half-close, read until the end.

    Like harness.talk(), except when the server closes first (a line too
    long, say) and so resets the connection while the client is still
    sending or shutting down: the bytes the server had sent before are
    still read and returned, rather than lost with the error.  A timeout still raises.
    """
    def client(server):
        deadline = time.monotonic() + REPLY_TIMEOUT
        with _connect(server) as sock:
            try:
                for chunk in chunks:
                    sock.sendall(chunk)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except TimeoutError as error:
                error.received = b""
                raise
            except OSError:
                pass  # reset by a server that has finished: its reply is still to be read
            try:
                return read_all(sock, deadline)
            except ConnectionResetError as error:
                return error.received
    return client


def _each_impl(handler_class, conversations, *, max_piece=None, waiting=None):
    """Run _run on every implementation; yield (label, replies)."""
    for label, impl in IMPLEMENTATIONS.items():
        replies, _ = _run(label, impl, handler_class, conversations,
                          max_piece=max_piece, waiting=waiting)
        yield label, replies


# -- the bug tests ----------------------------------------------------------------


def test_ends_at_eof(handler_class):
    """The handler must stop when the client closes its side (recv() returns b'')."""
    _check_class(handler_class, handler_class.__name__)
    list(_each_impl(handler_class, [_talker(b"hello\n")]))
    passed(f"{handler_class.__name__} stops at end of stream, on stdlib and on sockserv")


#: What test_sends_everything's client sends in one write: more than
#: SEND_PIECE bytes per read, so each send() of a read's worth is cut.
SEND_TEXT = b"every byte counts\n" * 200


def test_sends_everything(handler_class):
    """Every byte the handler hands to send() must go out."""
    _check_class(handler_class, handler_class.__name__)
    for label, (reply,) in _each_impl(handler_class, [_talker(SEND_TEXT)]):
        check(len(reply) >= len(SEND_TEXT),
              f"on {label} the client sent {len(SEND_TEXT)} bytes and got back only "
              f"{len(reply)}: send every byte back.")
    passed(f"{handler_class.__name__} sends all it means to, also when send() takes "
           f"only {SEND_PIECE} bytes at a time, on stdlib and on sockserv")


#: Text with two letters outside ASCII; read 4 bytes at a time, the first
#: read ends between the two bytes of "é".
SPLIT_TEXT = "café, crème\n"
SPLIT_PIECE = 4


def test_split_character(handler_class):
    """A character whose UTF-8 bytes arrive in two reads must come back whole."""
    _check_class(handler_class, handler_class.__name__)
    data = SPLIT_TEXT.encode("utf-8")
    for label, (reply,) in _each_impl(handler_class, [_talker(data)],
                                      max_piece=SPLIT_PIECE):
        try:
            text = reply.decode("utf-8")
        except UnicodeDecodeError:
            raise ExerciseFailed(
                f"on {label} the reply {preview(reply)} is not valid UTF-8: "
                f"something came between the two bytes of 'é', which arrived "
                f"in two reads.") from None
        check("é" in text and "è" in text,
              f"on {label} the reply {preview(text)} has lost a character: 'é' "
              f"arrived in two reads, and each read was decoded on its own.")
    passed(f"{handler_class.__name__} keeps 'é' whole when its bytes arrive in two "
           f"reads, on stdlib and on sockserv")


#: Two messages in one write; one message cut into reads of LINE_PIECE bytes.
MERGED = b"one\ntwo\n"
SPLIT_LINE = b"hello\n"
LINE_PIECE = 3


def test_one_reply_per_line(handler_class):
    """The ack protocol: each line gets one b'ack: ' + line, however it was read."""
    _check_class(handler_class, handler_class.__name__)
    merged_expected = b"".join(b"ack: " + line for line in MERGED.splitlines(True))
    for label, (reply,) in _each_impl(handler_class, [_talker(MERGED)]):
        check(reply == merged_expected,
              f"on {label} the client sent {MERGED!r} in one write and got back "
              f"{preview(reply)}, expected {merged_expected!r}: one recv() may "
              f"return two messages, so answer each line, not each read.")
    split_expected = b"ack: " + SPLIT_LINE
    for label, (reply,) in _each_impl(handler_class, [_talker(SPLIT_LINE)],
                                      max_piece=LINE_PIECE):
        check(reply == split_expected,
              f"on {label} the client sent {SPLIT_LINE!r}, which arrived in reads "
              f"of {LINE_PIECE} bytes, and got back {preview(reply)}, expected "
              f"{split_expected!r}: one recv() may return part of a message, so "
              f"answer each line, not each read.")
    passed(f"{handler_class.__name__} answers each line once, however TCP cuts "
           f"the stream, on stdlib and on sockserv")


#: Every byte value, invalid UTF-8, no newline at the end: an echo does not
#: care what the bytes mean.
RFC862_DATA = bytes(range(256)) * 32 + b"\xff\xfe no newline at the end"
RFC862_PIECE = 1000
#: Sent first, with no newline, and echoed back before the client sends more
#: or closes: an echo does not wait for the end of a line either.
PING = b"ping?"
#: Seconds the client waits for PING's echo with its side still open (a
#: loopback echo takes milliseconds).  Shorter than WATCHED_TIMEOUT, so a
#: handler that waits for the end before it answers is not timed out first.
PING_WAIT = 1.5


def _ping_then_close(server):
    """Send PING and wait for its echo; then b'pong', half-close, read the rest.

    Returns (what came back within PING_WAIT, everything that came back).
    """
    with _connect(server) as sock:
        sock.sendall(PING)
        sock.settimeout(PING_WAIT)
        early = b""
        try:
            while len(early) < len(PING):
                more = sock.recv(len(PING) - len(early))
                if not more:
                    break
                early += more
        except TimeoutError:
            pass  # nothing (or not all) came back in time: said by the check
        sock.settimeout(REPLY_TIMEOUT)
        if early == PING:
            sock.sendall(b"pong")
        sock.shutdown(socket.SHUT_WR)
        try:
            rest = read_all(sock)
        except OSError as error:
            error.received = early + error.received
            raise
        return early, early + rest


def test_rfc862(handler_class):
    """RFC 862: every byte back unchanged, as it arrives, until the client closes."""
    _check_class(handler_class, handler_class.__name__)
    whole = _talker(RFC862_DATA[:3000], RFC862_DATA[3000:])
    sent = f"{len(RFC862_DATA)} bytes (every byte value, no newline at the end)"
    for label, (reply,) in _each_impl(handler_class, [whole], max_piece=RFC862_PIECE):
        check(not reply.startswith(b"ack: "),
              f"on {label} the client sent {sent} and the reply starts with "
              f"b'ack: ': an echo server sends back what it got, and adds nothing.")
        check(reply == RFC862_DATA,
              f"on {label} the client sent {sent} and got back {len(reply)} bytes, "
              f"{preview(reply, 20)}: an echo sends back every byte unchanged.")
    for label, ((early, ping),) in _each_impl(handler_class, [_ping_then_close]):
        check(early == PING,
              f"on {label} the client sent {PING!r} and waited {PING_WAIT:g} s "
              f"for its echo with the connection open, and got {preview(early)}: "
              f"send back what arrives as it arrives, not only at the end.")
        check(ping == PING + b"pong",
              f"on {label} the client sent {PING!r}, then b'pong' and closed its "
              f"side, and got back {preview(ping)} in all: echo every byte.")
    passed(f"{handler_class.__name__} echoes every byte, as it arrives, until the "
           f"client closes (RFC 862), on stdlib and on sockserv")


# -- Exercise 1: a line-based upper-case echo ---------------------------------------

#: Lines merged in one write, characters of 2 and 3 bytes, a line exactly
#: MAX_LINE bytes long (newline included), a last line without a newline.
UPPER_TEXT = ("Grüß Gott\ncafé № 9, crème brûlée\n" + "x" * (MAX_LINE - 1) + "\n"
              + "ça va? ende")
#: Most bytes one read returns in check_upper_lines; odd, so that it cuts
#: 2-byte and 3-byte characters alike.
UPPER_PIECE = 5
#: A line longer than MAX_LINE, then one that must not be answered.
LONG_LINE = b"a" * (4 * MAX_LINE) + b"\nnot this\n"


def check_upper_lines(handler_class):
    """Check a handler that answers each line with its text upper-cased.

    Each line (at most MAX_LINE bytes, newline included) comes back as
    line.decode().upper(), encoded in UTF-8; a last line without a newline
    too.  A longer line gets TOO_LONG and the connection is closed.
    """
    name = "UpperLineHandler"
    _check_class(handler_class, name)
    data = UPPER_TEXT.encode("utf-8")
    expected = UPPER_TEXT.upper().encode("utf-8")
    for label, (reply,) in _each_impl(handler_class, [_talker(data)],
                                      max_piece=UPPER_PIECE):
        if reply != expected:
            shown = preview(reply.decode("utf-8", "backslashreplace"))
            check(reply != data.upper(),
                  f"on {label} the handler sent back {shown}, with the letters "
                  f"outside ASCII not upper-cased: bytes.upper() changes ASCII "
                  f"letters only, so upper-case the text (str).")
            check(TOO_LONG not in reply,
                  f"on {label} a line of exactly {MAX_LINE} bytes (newline "
                  f"included) got {TOO_LONG!r}: a line may be {MAX_LINE} bytes "
                  f"long, so refuse only a longer one.")
            check(not expected.startswith(reply),
                  f"on {label} the handler sent back {len(reply)} of the "
                  f"{len(expected)} bytes expected, {shown}: answer every line, "
                  f"also a last one without a newline.")
            raise ExerciseFailed(f"on {label} the handler sent back {shown}, "
                                 f"expected {preview(UPPER_TEXT.upper())}.")
    for label, (long_reply,) in _each_impl(handler_class, [_talker(LONG_LINE)],
                                           max_piece=UPPER_PIECE):
        check(long_reply == TOO_LONG,
              f"on {label} a line of {4 * MAX_LINE + 1} bytes got back "
              f"{preview(long_reply)}, expected {TOO_LONG!r} and the connection "
              f"closed: read at most MAX_LINE + 1 bytes with readline(limit).")
    passed(f"{handler_class.__name__} upper-cases each line, read {UPPER_PIECE} bytes "
           f"at a time, and refuses a line over {MAX_LINE} bytes, on stdlib and on "
           f"sockserv")


# -- Exercise 2: length-prefixed frames ----------------------------------------------


def frame(payload):
    """One frame: the payload's length as 4 bytes, big-endian, then the payload."""
    return struct.pack("!I", len(payload)) + payload


#: The frames of check_length_prefixed, sent in one write and read
#: FRAME_PIECE bytes at a time (so even a 4-byte header is cut).
FRAME_PAYLOADS = (b"hello", b"", "café".encode("utf-8"), bytes(range(256)), b"\n" * 3)
FRAME_PIECE = 3
#: A header announcing more than MAX_FRAME bytes, and a little of them.
HUGE_LENGTH = 1 << 24
#: The largest frame allowed, and the smallest refused, each sent whole: the
#: bound's off-by-one shows only at its edge.  (Every byte value, 256 times.)
EDGE_PAYLOAD = bytes(range(256)) * (MAX_FRAME // 256)
OVER_PAYLOAD = EDGE_PAYLOAD + b"!"


def _huge_frame(server):
    """Announce HUGE_LENGTH bytes, send 3, keep the connection open, wait for EOF."""
    return _talker(struct.pack("!I", HUGE_LENGTH) + b"abc", half_close=False)(server)


def check_length_prefixed(handler_class):
    """Check a handler that answers each frame with frame(b'ack: ' + payload).

    A frame is a 4-byte big-endian length and that many bytes.  At end of
    stream the handler returns; a length over MAX_FRAME closes the
    connection at once, without a reply.  A frame of exactly MAX_FRAME
    bytes is answered like any other.
    """
    name = "FrameAckHandler"
    _check_class(handler_class, name)
    data = b"".join(frame(payload) for payload in FRAME_PAYLOADS)
    expected = b"".join(frame(b"ack: " + payload) for payload in FRAME_PAYLOADS)
    count = len(FRAME_PAYLOADS)
    waiting = (f"waited {WATCHED_TIMEOUT:g} s for the {HUGE_LENGTH} bytes a header "
               f"announced, which never came: refuse a length over MAX_FRAME and "
               f"close the connection at once.")
    for label, (reply,) in _each_impl(handler_class, [_talker(data)],
                                      max_piece=FRAME_PIECE):
        check(reply == expected,
              f"on {label} the client sent {count} frames in one write (read "
              f"{FRAME_PIECE} bytes at a time) and got back {preview(reply)}, "
              f"expected {preview(expected)}.")
    # The edge frames are read whole (no max_piece): 3 bytes at a time would
    # make some 22,000 reads of each, and the cuts were tested just above.
    edge, over = frame(EDGE_PAYLOAD), frame(OVER_PAYLOAD)
    edge_expected = frame(b"ack: " + EDGE_PAYLOAD)
    for label, (edge_reply, over_reply) in _each_impl(handler_class,
                                                      [_talker(edge), _talker(over)]):
        check(edge_reply != b"",
              f"on {label} a frame of exactly {MAX_FRAME} bytes got no reply: a "
              f"frame may be MAX_FRAME bytes long, so refuse only a longer one.")
        check(edge_reply == edge_expected,
              f"on {label} a frame of exactly {MAX_FRAME} bytes got back "
              f"{len(edge_reply)} bytes, {preview(edge_reply, 20)}, expected "
              f"{len(edge_expected)}, {preview(edge_expected, 20)}.")
        check(over_reply == b"",
              f"on {label} a frame of {MAX_FRAME + 1} bytes got the reply "
              f"{preview(over_reply, 20)}: refuse a length over MAX_FRAME, and "
              f"close the connection without a reply.")
    for label, (huge_reply,) in _each_impl(handler_class, [_huge_frame],
                                           max_piece=FRAME_PIECE, waiting=waiting):
        check(huge_reply == b"",
              f"on {label} a frame announcing {HUGE_LENGTH} bytes got the reply "
              f"{preview(huge_reply)}: close the connection without a reply.")
    passed(f"{handler_class.__name__} answers {count} frames read {FRAME_PIECE} bytes "
           f"at a time and one of exactly {MAX_FRAME} bytes, and refuses a length over "
           f"{MAX_FRAME}, on stdlib and on sockserv")
