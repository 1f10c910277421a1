"""Checks for the exercises of lesson 01, "From sockets to socketserver".

Each check runs the learner's code against real sockets on 127.0.0.1,
port 0, and either prints one "Check passed" line or raises
``ExerciseFailed`` with one sentence saying what went wrong.

Each check builds the scenario that makes the lesson's mistakes visible,
because the easy scenario lets most wrong answers through:

* ``check_sturdy_echo``: a raw echo loop must survive a client that resets
  its connection.  Three clients come one after the other, the second one
  resets; the check watches the listening socket, so it sees whether each
  connection was closed before the next ``accept()`` (also the one that
  failed), whether the loop went on to the third client, and what the
  function returned.
* ``check_upper_echo``: a handler must send back UTF-8 text upper-cased.
  The text has capitals (``swapcase()`` fails), letters outside ASCII
  (``bytes.upper()`` leaves them alone), and the connection hands the
  handler at most ``UPPER_PIECE`` bytes per read, as a slow network may,
  so characters are split between reads (decoding each piece raises, and
  ``errors="ignore"`` silently drops them).
* ``check_byte_counts``: a handler must record each connection's byte count
  on the server.  Three connections (0 bytes, 5, 3000 in pieces no larger
  than ``COUNT_PIECE``) tell a count per connection from a count per piece,
  a list on the server from one on the handler class, and appending from
  replacing.

The mistake this lesson is about, a loop that ignores ``recv() == b''``,
never blocks again once the client has gone: it spins, and no thread can
stop another one from the outside.  So the checks give the learner's code a
*watched* connection (``harness.WatchedConnection``, shared with lesson 06),
a real socket whose ``recv`` and ``recv_into`` (which ``makefile()`` files
use too) count the empty reads and raise
``ReadAfterEOF`` once there are clearly too many, and which has a timeout,
so code that waits for data that never comes fails too.  Everything else
that could hang (clients, serving, a function that never returns) is
bounded by ``sockserv.teach.harness``.

Checks of handler classes run them on the stdlib's ``socketserver`` and on
``sockserv``: a handler written for one must behave the same on both.
"""

import socket
import struct
import sys
import threading

from .checks import (ExerciseFailed, check, describe_error, passed, preview,
                     require_filled_in)
from .harness import (CLIENT_TIMEOUT, IMPLEMENTATIONS, LOCALHOST, STOP_TIMEOUT,
                      ReadAfterEOF, TimedOut, WatchedConnection, close_hard, connect,
                      recording_errors, run_bounded, serving, talk)

__all__ = ["ReadAfterEOF", "check_sturdy_echo", "check_upper_echo",
           "check_byte_counts"]

#: Seconds the learner's code may wait on a watched socket (a connection,
#: or the listener in exercise 1) before its call raises TimeoutError.
#: Shorter than REPLY_TIMEOUT, so the learner's side gives up first and
#: the check can say which side was waiting.
WATCHED_TIMEOUT = 2.0
#: Seconds a check's client waits for a handler's whole reply.  A loopback
#: reply takes milliseconds; a handler still silent after this, though its
#: own reads would have timed out, is stuck somewhere else.
REPLY_TIMEOUT = WATCHED_TIMEOUT + 1.0
#: Seconds exercise 1's function may take for its three clients (they need
#: milliseconds) before the check gives up on it.
STURDY_TIMEOUT = REPLY_TIMEOUT + WATCHED_TIMEOUT


def _watch(conn, max_piece=None):
    """Move an accepted connection into a WatchedConnection with WATCHED_TIMEOUT."""
    return WatchedConnection.watching(conn, WATCHED_TIMEOUT, max_piece)


def _reset(sock):
    """Close sock abruptly: with a linger time of 0, close() sends a TCP reset."""
    # struct linger is two ints on Linux and macOS, two u_shorts on Windows.
    layout = "HH" if sys.platform == "win32" else "ii"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(layout, 1, 0))
    sock.close()


def _short_repr(value, limit=60):
    """repr(value), cut to about limit characters, for a sentence."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(error, who):
    """One sentence for an exception raised by the learner's code."""
    if isinstance(error, ReadAfterEOF):
        return (f"{who} kept calling recv() after it returned b'' (the client had "
                f"closed its side), so a real server would spin there forever: "
                f"stop the loop when recv() returns b''.")
    if isinstance(error, UnicodeDecodeError):
        return (f"{who} raised {describe_error(error)}: one recv() is not one "
                f"message, and a character's bytes can be split between two reads.")
    if isinstance(error, TimeoutError):
        return (f"{who} waited {WATCHED_TIMEOUT:g} s for data that the client "
                f"never sent: read what arrives, and stop at b''.")
    return f"{who} raised {describe_error(error)}."


def _check_handler_class(handler_class, name):
    check(isinstance(handler_class, type) and hasattr(handler_class, "handle"),
          f"pass the handler class itself ({name}), not an instance or a function.")
    require_filled_in(handler_class, name)


def _watched_server_class(impl, max_piece):
    """impl.TCPServer that watches its connections and keeps handler errors quietly."""

    class WatchedTCPServer(recording_errors(impl.TCPServer)):
        def get_request(self):
            conn, client_address = super().get_request()
            watched = _watch(conn, max_piece)
            self.watched.append(watched)
            return watched, client_address

        def spun(self):
            """Whether a handler kept reading one of the connections after EOF."""
            return any(conn.spun for conn in self.watched)

    return WatchedTCPServer


def _run_handler(label, impl, handler_class, conversations, *, max_piece=None,
                 prepare=None):
    """Serve handler_class on impl for the conversations; return (replies, server).

    conversations is a list of chunk lists, one per connection, run one
    after the other with harness.talk().  prepare(server), if given, runs
    before serving.  Every way the handler can go wrong ends in
    ExerciseFailed within a bound: it raised, it spun, it never closed the
    connection, or its handle() never returned.
    """
    who = f"handle() on {label}"
    with _watched_server_class(impl, max_piece)(LOCALHOST, handler_class) as server:
        server.watched = []
        if prepare is not None:
            prepare(server)
        replies = []
        stuck = None
        try:
            with serving(server, stop_timeout=STOP_TIMEOUT):
                for chunks in conversations:
                    try:
                        replies.append(talk(server.server_address, *chunks,
                                            timeout=REPLY_TIMEOUT))
                    except OSError as error:
                        # A handler that raised made the server close (or
                        # reset) the connection: the error explains it below.
                        replies.append(getattr(error, "received", b""))
                        if isinstance(error, TimeoutError):
                            stuck = error
                            break
        except TimedOut:
            # A handler that catches every Exception swallows ReadAfterEOF and
            # spins on: say so, rather than only that it never returned.
            check(not server.spun(), _describe(ReadAfterEOF(), who))
            raise ExerciseFailed(
                f"{who} never returned: the client had closed its side and waited "
                f"{REPLY_TIMEOUT:g} s, and the server could not stop within "
                f"{STOP_TIMEOUT:g} s.") from None
    check(not server.spun(), _describe(ReadAfterEOF(), who))
    if server.errors:
        raise ExerciseFailed(_describe(server.errors[0][1], who))
    check(stuck is None,
          f"{who} had not finished {REPLY_TIMEOUT:g} s after the client closed its "
          f"side: stop reading when recv() returns b'', and return.")
    return replies, server


# -- Exercise 1: a raw echo loop that survives a bad client --------------------

#: What the three clients of exercise 1 send.  The second one reads its echo
#: and then resets the connection instead of closing it.
STURDY_MESSAGES = (b"A is here\n" * 30, b"B is here", b"C is here\n" * 30)
STURDY_CLIENTS = len(STURDY_MESSAGES)
_ORDINALS = ("first", "second", "third")


class _WatchedListener(socket.socket):
    """A listening socket that watches every connection it hands out.

    Before each accept() it looks whether the connections it gave before
    have been closed; one still open is noted, then closed here so that its
    client is not left waiting.
    """

    def __init__(self):
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.accepted = []       # the watched connections, in order
        self.left_open = []      # indexes of connections open at the next accept()
        self.accept_calls = 0

    def accept(self):
        """Like socket.accept(), returning a watched connection."""
        self.accept_calls += 1
        for index, conn in enumerate(self.accepted):
            if conn.fileno() != -1:
                self.left_open.append(index)
                close_hard(conn)
        conn, address = super().accept()
        watched = _watch(conn)
        self.accepted.append(watched)
        return watched, address


def _read_exactly(sock, size):
    """Read exactly size bytes (bounded by sock's timeout); fewer if the stream ends."""
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            break
        data += more
    return data


def _sturdy_clients(address, replies):
    """Play the three clients of exercise 1 in turn; store what each got back."""
    for index, message in enumerate(STURDY_MESSAGES):
        try:
            if index == 1:
                with connect(address) as sock:
                    sock.sendall(message)
                    replies[index] = _read_exactly(sock, len(message))
                    _reset(sock)
            else:
                replies[index] = talk(address, message, timeout=REPLY_TIMEOUT)
        except OSError as error:
            replies[index] = getattr(error, "received", b"")


def check_sturdy_echo(sturdy_echo_server):
    """Check sturdy_echo_server(listener, clients) -> list of the errors it caught.

    It must echo `clients` connections one after the other until each
    client closes its side, close every connection before accepting the
    next (also a connection that failed), go on after an OSError, and
    return the exceptions it caught.
    """
    name = "sturdy_echo_server"
    check(callable(sturdy_echo_server) and not isinstance(sturdy_echo_server, type),
          f"pass the function itself, {name}, not the result of calling it.")
    require_filled_in(sturdy_echo_server, name)
    who = f"{name}()"
    listener = _WatchedListener()
    replies = [None] * STURDY_CLIENTS
    outcome = {}
    clients = None
    try:
        listener.bind(LOCALHOST)
        listener.listen()
        listener.settimeout(WATCHED_TIMEOUT)
        clients = threading.Thread(target=_sturdy_clients, name="lesson01 clients",
                                   args=(listener.getsockname(), replies), daemon=True)
        clients.start()
        try:
            outcome["returned"] = run_bounded(
                sturdy_echo_server, listener, STURDY_CLIENTS,
                timeout=STURDY_TIMEOUT, what=who)
        except TimedOut as timed_out:
            outcome["stuck"] = timed_out.thread
        except Exception as error:  # the learner's error, told in one sentence
            outcome["raised"] = error
    finally:
        # Wake whatever is still blocked on these sockets, learner's or ours.
        close_hard(listener)
        if clients is not None:
            clients.join(CLIENT_TIMEOUT)
        still_open = [conn.fileno() != -1 for conn in listener.accepted]
        for conn in listener.accepted:
            close_hard(conn)
        if "stuck" in outcome:
            outcome["stuck"].join(WATCHED_TIMEOUT)
    _report_sturdy(who, listener, replies, outcome, still_open)
    passed(f"{who} echoed the first and third clients, closed all three "
           f"connections and returned the second client's "
           f"{type(outcome['returned'][0]).__name__}")


def _report_sturdy(who, listener, replies, outcome, still_open):
    """Raise ExerciseFailed for the first thing exercise 1's run got wrong."""
    if any(conn.spun for conn in listener.accepted):
        raise ExerciseFailed(_describe(ReadAfterEOF(), who))
    if "stuck" in outcome:
        check(listener.accept_calls <= STURDY_CLIENTS,
              f"{who} called accept() again after its {STURDY_CLIENTS} clients: "
              f"serve `clients` connections, then return.")
        raise ExerciseFailed(
            f"{who} did not return within {STURDY_TIMEOUT:g} s: "
            f"serve `clients` connections, then return.")
    error = outcome.get("raised")
    if isinstance(error, TimeoutError) and listener.accept_calls > STURDY_CLIENTS:
        raise ExerciseFailed(
            f"{who} called accept() again after its {STURDY_CLIENTS} clients: "
            f"serve `clients` connections, then return.")
    if isinstance(error, OSError):
        raise ExerciseFailed(
            f"{who} raised {type(error).__name__} when the second client reset its "
            f"connection, so the third client was never served: catch OSError "
            f"around each client, close that connection and go on.")
    if error is not None:
        raise ExerciseFailed(_describe(error, who))
    for index, message in enumerate(STURDY_MESSAGES):
        if index == 1:
            continue  # the resetting client's echo may be cut by its own reset
        reply = replies[index]
        check(reply == message,
              f"the {_ORDINALS[index]} client sent {len(message)} bytes and got back "
              f"{preview(reply or b'')}: echo every byte of every client, until "
              f"its recv() returns b''.")
    for index in sorted(set(listener.left_open)):
        ordinal = _ORDINALS[index]
        reason = " (the one that reset)" if index == 1 else ""
        raise ExerciseFailed(
            f"the connection of the {ordinal} client{reason} was still open when "
            f"{who} accepted the next client: close every connection, also one "
            f"that an error ended (a with block or try/finally).")
    check(not still_open[-1],
          f"the connection of the last client was still open when {who} returned: "
          f"close every connection.")
    returned = outcome["returned"]
    check(isinstance(returned, list),
          f"{who} returned {_short_repr(returned)}, expected a list of "
          f"the exceptions it caught.")
    check(len(returned) == 1 and isinstance(returned[0], OSError),
          f"{who} returned {_short_repr(returned)}, expected a list "
          f"holding the one OSError of the second client.")


# -- Exercise 2: an upper-casing echo of UTF-8 text ---------------------------

#: Capitals, small letters and letters outside ASCII (2 and 3 bytes in UTF-8;
#: "ß" upper-cases to "SS"), sent in two chunks, the first one ending inside
#: the "é" of "Café".
UPPER_TEXT = "Grüß Gott, Ærøskøbing! Café Ünïcode\nÉtude № 9, ¿Qué tal?\n"
_UPPER_BYTES = UPPER_TEXT.encode("utf-8")
_SPLIT = _UPPER_BYTES.index("é".encode("utf-8")) + 1
UPPER_CHUNKS = (_UPPER_BYTES[:_SPLIT], _UPPER_BYTES[_SPLIT:])
#: Most bytes one read on the watched connection returns.  Odd, so that it
#: cuts through 2-byte characters as well as 3-byte ones.
UPPER_PIECE = 5


def _as_text(data):
    """UTF-8 bytes as text for a message; bytes that are not UTF-8 as \\x escapes."""
    return data.decode("utf-8", "backslashreplace")


def check_upper_echo(handler_class):
    """Check a handler that echoes UTF-8 text upper-cased, on both implementations.

    The reply must be UPPER_TEXT.upper() encoded in UTF-8, however the
    bytes were cut into reads.
    """
    _check_handler_class(handler_class, "UpperEchoHandler")
    expected = UPPER_TEXT.upper().encode("utf-8")
    sent = b"".join(UPPER_CHUNKS)
    for label, impl in IMPLEMENTATIONS.items():
        (reply,), _ = _run_handler(label, impl, handler_class, [UPPER_CHUNKS],
                                   max_piece=UPPER_PIECE)
        if reply == expected:
            continue
        shown = preview(_as_text(reply))
        check(not reply or not expected.startswith(reply),
              f"on {label} the handler sent back only {len(reply)} of the "
              f"{len(expected)} bytes expected ({shown}): reply to every byte, "
              f"also the last piece.")
        check(reply != sent.upper(),
              f"on {label} the handler sent back {shown}, with the letters outside "
              f"ASCII not upper-cased: bytes.upper() changes ASCII letters only, "
              f"so work on the text (str) instead.")
        check(False,
              f"on {label} the handler sent back {shown}, expected "
              f"{preview(UPPER_TEXT.upper())}.")
    passed(f"{handler_class.__name__} upper-cases UTF-8 text cut into "
           f"{UPPER_PIECE}-byte pieces, on stdlib and on sockserv")


# -- Exercise 3: count the bytes of each connection -------------------------

# One connection that sends nothing, one small, one that arrives in pieces.
COUNT_CONVERSATIONS = ([], [b"hello"], [b"a" * 1000, b"b" * 1000, b"c" * 1000])
#: Most bytes one read returns in this check, so that 3000 bytes always take
#: several reads (else a count of the last read alone could pass).
COUNT_PIECE = 512


def check_byte_counts(handler_class):
    """Check an echo handler that appends each connection's byte count to server.byte_counts."""
    _check_handler_class(handler_class, "CountingEchoHandler")
    expected = [sum(map(len, chunks)) for chunks in COUNT_CONVERSATIONS]

    def prepare(server):
        server.byte_counts = []

    for label, impl in IMPLEMENTATIONS.items():
        replies, server = _run_handler(label, impl, handler_class,
                                       COUNT_CONVERSATIONS, max_piece=COUNT_PIECE,
                                       prepare=prepare)
        for chunks, reply in zip(COUNT_CONVERSATIONS, replies):
            sent = b"".join(chunks)
            check(reply == sent,
                  f"on {label} the handler sent back {len(reply)} bytes for a "
                  f"{len(sent)}-byte message: it should still echo every byte.")
        counts = getattr(server, "byte_counts", None)
        check(counts == expected,
              f"on {label}, after three connections sending "
              f"{', '.join(map(str, expected[:-1]))} and {expected[-1]} bytes, "
              f"server.byte_counts is {_short_repr(counts)}, expected "
              f"{expected!r}.")
    passed(f"{handler_class.__name__} echoes and records {expected} on "
           f"stdlib and on sockserv")
