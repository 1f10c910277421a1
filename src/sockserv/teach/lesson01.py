"""Checks for the exercises of lesson 01, "From sockets to socketserver".

Each check runs the learner's code against a real server on 127.0.0.1,
port 0, and either prints one "Check passed" line or raises
``ExerciseFailed`` with one sentence saying what went wrong.

The mistake this lesson is about, a loop that ignores ``recv() == b''``,
never blocks again once the client has gone: it spins in the server's
thread, and no thread can stop another one from the outside.  So the
checks give the learner's code a *watched* connection, a real socket
whose ``recv`` and ``recv_into`` (which ``makefile()`` files use too)
count the empty reads and raise ``ReadAfterEOF`` once there are clearly
too many.  The spinning loop ends in its own thread, the check reports it
in one sentence, and nothing hangs.  The watched socket also has a
timeout, so code that waits for data that never comes fails too.

Checks of handler classes run them on the stdlib's ``socketserver`` and on
``sockserv``: a handler written for one must behave the same on both.
"""

import socket
import socketserver
import sys
import threading

import sockserv

from .checks import ExerciseFailed, check, passed
from .serving import serving

__all__ = ["ReadAfterEOF", "check_echo_until_eof", "check_upper_echo",
           "check_byte_counts"]

#: Empty reads allowed on one connection.  A correct loop needs one; a few
#: more are harmless (a helper that looks twice); a spinning loop makes
#: millions, so any small bound tells the two apart without timing anything.
MAX_EMPTY_READS = 20
#: Seconds the learner's code may wait on its connection for data.
SERVER_SIDE_TIMEOUT = 3.0
#: Seconds the check's client waits for the server.
CLIENT_TIMEOUT = 5.0

IMPLEMENTATIONS = (("socketserver", socketserver), ("sockserv", sockserv))


class ReadAfterEOF(Exception):
    """The code under check kept reading a connection that had ended.

    Deliberately not an OSError: code that catches socket errors to carry
    on must not swallow it and go back to spinning.
    """


class _WatchedSocket(socket.socket):
    """A connected socket that refuses to be read in a busy loop after EOF."""

    empty_reads = 0

    def recv(self, bufsize, *args):
        """Like socket.recv, counting the b'' results."""
        data = super().recv(bufsize, *args)
        if not data and bufsize:
            self._note_empty_read()
        return data

    def recv_into(self, buffer, nbytes=0, *args):
        """Like socket.recv_into, counting the reads that found nothing."""
        count = super().recv_into(buffer, nbytes, *args)
        if count == 0 and (nbytes or len(buffer)):
            self._note_empty_read()
        return count

    def _note_empty_read(self):
        """Allow a few empty reads; after that the caller is spinning."""
        self.empty_reads += 1
        if self.empty_reads > MAX_EMPTY_READS:
            raise ReadAfterEOF(f"recv() returned b'' {self.empty_reads} times")


def _watch(conn):
    """Move an accepted connection into a _WatchedSocket with a timeout."""
    watched = _WatchedSocket(conn.family, conn.type, conn.proto,
                             fileno=conn.detach())
    watched.settimeout(SERVER_SIDE_TIMEOUT)
    return watched


def _talk(address, chunks):
    """Send the chunks, half-close, and return every byte read until EOF.

    A server that closes before reading everything makes the connection
    reset; that ends the conversation early instead of raising, so that
    the caller's comparison explains what was missing.
    """
    received = bytearray()
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            # Half-close: the server's recv() returns b'' while we can
            # still read what it sends back.
            sock.shutdown(socket.SHUT_WR)
            while data := sock.recv(65536):
                received += data
        except TimeoutError:
            raise ExerciseFailed(
                f"the server sent nothing and kept the connection open for "
                f"{CLIENT_TIMEOUT:g} s after the client closed its side, so it "
                f"never noticed recv() returning b''.") from None
        except OSError:
            # A server that stopped reading early made the connection reset:
            # recv() or send() raise ECONNRESET or EPIPE, shutdown() ENOTCONN.
            pass
    return bytes(received)


def _preview(data, limit=40):
    """A short repr of some bytes for a one-sentence message."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r} (and {len(data) - limit} more bytes)"


def _describe(error, who):
    """One sentence for an exception raised by the learner's code."""
    if isinstance(error, ReadAfterEOF):
        return (f"{who} kept calling recv() after it returned b'' (the client had "
                f"closed its side), so a real server would spin there forever: "
                f"stop the loop when recv() returns b''.")
    if isinstance(error, TimeoutError):
        return (f"{who} waited {SERVER_SIDE_TIMEOUT:g} s for data that the client "
                f"never sent: read what arrives, and stop at b''.")
    return f"{who} raised {type(error).__name__}: {error}."


def _checked_server_class(impl):
    """impl.TCPServer that watches connections and keeps handler errors."""

    class CheckedTCPServer(impl.TCPServer):
        def __init__(self, *args, **kwargs):
            self.errors = []
            super().__init__(*args, **kwargs)

        def get_request(self):
            conn, client_address = super().get_request()
            return _watch(conn), client_address

        def handle_error(self, request, client_address):
            # Kept for the check to explain, instead of a traceback on stderr.
            self.errors.append(sys.exc_info()[1])

    return CheckedTCPServer


def _run_handler(impl, handler_class, conversations, prepare=None):
    """Serve handler_class on impl; return (replies, server) after shutdown.

    conversations is a list of chunk lists, one per connection, run one
    after the other.  prepare(server), if given, runs before serving.
    """
    server_class = _checked_server_class(impl)
    with server_class(("127.0.0.1", 0), handler_class) as server:
        if prepare is not None:
            prepare(server)
        with serving(server):
            replies = [_talk(server.server_address, chunks)
                       for chunks in conversations]
    if server.errors:
        raise ExerciseFailed(_describe(server.errors[0],
                                       f"handle() on {impl.__name__}"))
    return replies, server


def _check_handler_class(handler_class):
    check(isinstance(handler_class, type)
          and hasattr(handler_class, "handle"),
          "pass the handler class itself (for example UpperEchoHandler), "
          "not an instance or a function.")


# -- Exercise 1: make the raw loop stop on b'' ------------------------------

ECHO_CHUNKS = (b"spam, ", b"eggs and ", b"x" * 3000, b"\nthe end\n")


def check_echo_until_eof(echo_until_eof):
    """Check a raw echo loop: echo(conn) must echo everything and return at b''."""
    check(callable(echo_until_eof),
          "pass the function itself, echo_until_eof, not the result of calling it.")
    outcome = {}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(CLIENT_TIMEOUT)

        def serve_one():
            conn, _ = listener.accept()
            with _watch(conn) as watched:
                try:
                    outcome["returned"] = echo_until_eof(watched)
                except Exception as error:  # reported below, in one sentence
                    outcome["error"] = error

        thread = threading.Thread(target=serve_one, name="lesson01-check")
        thread.start()
        try:
            reply = _talk(listener.getsockname(), ECHO_CHUNKS)
        finally:
            thread.join(timeout=CLIENT_TIMEOUT + SERVER_SIDE_TIMEOUT)
    check(not thread.is_alive(),
          "echo_until_eof() had not returned long after the client closed.")
    if "error" in outcome:
        raise ExerciseFailed(_describe(outcome["error"], "echo_until_eof()"))
    sent = b"".join(ECHO_CHUNKS)
    check(reply == sent,
          f"the client sent {len(sent)} bytes and got back {_preview(reply)}: "
          f"echo every byte, in order, until recv() returns b''.")
    passed(f"echo_until_eof() echoed all {len(sent)} bytes and returned "
           f"when recv() gave b''")


# -- Exercise 2: an upper-casing echo handler -------------------------------

UPPER_CHUNKS = (b"hello, world\n", b"from socketserver\n")


def check_upper_echo(handler_class):
    """Check a handler that echoes every byte upper-cased, on both implementations."""
    _check_handler_class(handler_class)
    sent = b"".join(UPPER_CHUNKS)
    expected = sent.upper()
    for name, impl in IMPLEMENTATIONS:
        (reply,), _ = _run_handler(impl, handler_class, [UPPER_CHUNKS])
        check(reply == expected,
              f"on {name} the handler sent back {_preview(reply)} for "
              f"{_preview(sent)}, expected {_preview(expected)}.")
    passed(f"{handler_class.__name__} upper-cases every byte, on socketserver "
           f"and on sockserv")


# -- Exercise 3: count the bytes of each connection -------------------------

# One connection that sends nothing, one small, one that arrives in pieces.
COUNT_CONVERSATIONS = ([], [b"hello"], [b"a" * 1000, b"b" * 1000, b"c" * 1000])


def check_byte_counts(handler_class):
    """Check an echo handler that appends each connection's byte count to server.byte_counts."""
    _check_handler_class(handler_class)
    expected = [sum(map(len, chunks)) for chunks in COUNT_CONVERSATIONS]

    def prepare(server):
        server.byte_counts = []

    for name, impl in IMPLEMENTATIONS:
        replies, server = _run_handler(impl, handler_class,
                                       COUNT_CONVERSATIONS, prepare)
        for chunks, reply in zip(COUNT_CONVERSATIONS, replies):
            sent = b"".join(chunks)
            check(reply == sent,
                  f"on {name} the handler sent back {len(reply)} bytes for a "
                  f"{len(sent)}-byte message: it should still echo every byte.")
        counts = server.byte_counts
        check(counts == expected,
              f"on {name}, after three connections sending "
              f"{', '.join(map(str, expected[:-1]))} and {expected[-1]} bytes, "
              f"server.byte_counts is {counts!r}, expected {expected!r}.")
    passed(f"{handler_class.__name__} echoes and records {expected} on "
           f"socketserver and on sockserv")
