"""The one lesson harness: clients, serving, bounded runs and timeouts.

Every lesson, every exercise check and every test of them talks to real
servers on 127.0.0.1, port 0, and every one of them must end: a wrong
answer fails with a sentence, it never hangs the notebook.  The pieces that
make that so live here, once, so that each lesson module keeps only its own
checks and data:

* ``IMPLEMENTATIONS`` the two modules every scenario runs on, by label;
* ``LOCALHOST``, ``POLL_INTERVAL``, ``CLIENT_TIMEOUT``, ``STOP_TIMEOUT``
  the address and the bounds that lessons, checks and tests share;
* ``talk()`` the client: connect, send, half-close, read to the end;
  ``connect()``, ``read_line()`` and ``read_all()`` are its parts, for a
  client that must stay connected while something else happens;
* ``serving()`` serve in a thread for the length of a ``with`` block, and
  stop, join and close after it, within a bound when asked;
* ``run_bounded()`` call a function in a thread and give up after a bound;
* ``recording_errors()`` a server class that keeps handler errors quietly.

Why threads and bounds, and never signals: a thread cannot be stopped from
outside, and signals reach only the main thread (and barely exist on
Windows).  So code that may never return runs in a *daemon* thread that we
wait for with a timeout; when the bound passes we raise ``TimedOut`` and
leave the thread behind, which cannot keep Python from exiting.
"""

import contextlib
import socket
import socketserver
import sys
import threading
import time

import sockserv

__all__ = ["IMPLEMENTATIONS", "LOCALHOST", "POLL_INTERVAL", "CLIENT_TIMEOUT",
           "STOP_TIMEOUT", "TimedOut", "talk", "connect", "read_line",
           "read_all", "close_hard", "serving", "run_bounded", "recording_errors",
           "MAX_EMPTY_READS", "ReadAfterEOF", "WatchedConnection"]

#: Label -> module; the stdlib first.  Labels name the implementation in
#: sentences and test ids ("on stdlib ...", ``test_x[sockserv]``).
IMPLEMENTATIONS = {"stdlib": socketserver, "sockserv": sockserv}

#: Where every lesson server listens: the loopback interface, a free port.
LOCALHOST = ("127.0.0.1", 0)

#: serve_forever() poll interval in lessons, checks and tests.  Short, because
#: the stdlib's shutdown() waits for the loop's next turn.
POLL_INTERVAL = 0.05

#: Seconds one client conversation may take (connect, send and read, in all).
#: Far above what a loopback exchange needs, even on a busy 2-core machine;
#: it only decides how soon a hang is reported.
CLIENT_TIMEOUT = 5.0

#: Seconds stopping a server (shutdown, join, server_close) may take before
#: a check gives up on it and says that a handler never returned.
STOP_TIMEOUT = 3.0


class TimedOut(Exception):
    """Something run under a bound did not finish in time.

    The message is one sentence, ending in a full stop, naming what did not
    finish and the bound.  ``thread`` is the daemon thread that is still
    running it: a test that can release the stuck code afterwards joins it.
    """

    def __init__(self, sentence, thread=None):
        super().__init__(sentence)
        self.thread = thread


# -- the client ------------------------------------------------------------


def connect(address, family=socket.AF_INET, timeout=CLIENT_TIMEOUT):
    """A connected stream socket to address, every operation bounded by timeout.

    address is (host, port) for AF_INET or a path for AF_UNIX.  The caller
    owns the socket (use it in a ``with``).  Raises OSError (TimeoutError,
    ConnectionRefusedError, ...) with nothing left open.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def read_line(sock):
    """Receive until a newline or EOF; return the bytes (the newline kept).

    One recv() is not one message: TCP may split a line or join two, so
    this reads until the line is complete.  It reads one byte at a time,
    so that nothing after the newline is taken from the socket.  Bounded
    by the socket's own timeout (TimeoutError).
    """
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return bytes(line)


def read_all(sock, deadline=None):
    """Receive until EOF (recv() returns b''); return every byte received.

    Each recv() is bounded by the socket's timeout; with deadline (a
    time.monotonic() value) the whole read is, too, so a server that
    trickles bytes for ever cannot keep it going (the socket's timeout is
    then left at what remained).  On an OSError
    (TimeoutError, ConnectionResetError, ...) the bytes read so far are
    attached to the exception as ``received`` before it propagates.
    """
    received = bytearray()
    try:
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the reply did not end in time")
                sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                return bytes(received)
            received += data
    except OSError as error:
        error.received = bytes(received)
        raise


def close_hard(sock):
    """Shut sock down both ways and close it, so that a thread blocked on it wakes up now.

    close() alone does not wake a recv() or accept() that another thread is
    blocked in (on Linux); shutdown() first does.
    """
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected, or already closed
    sock.close()


def talk(address, *chunks, family=socket.AF_INET, half_close=True,
         timeout=CLIENT_TIMEOUT):
    """Connect, send each chunk, half-close, and return all bytes read until EOF.

    half_close=True shuts down the sending side after the last chunk, so a
    handler that reads to EOF sees recv() return b'' while the reply can
    still come back; with half_close=False the client waits for the server
    to close first.  timeout bounds the whole conversation, not only each
    operation.  Errors are not softened: TimeoutError when the server
    neither answers nor closes in time, ConnectionResetError/BrokenPipeError
    when it drops the connection; either way the bytes received before the
    error are on the exception as ``received`` (b'' if none), so a check
    can say what did arrive.
    """
    deadline = time.monotonic() + timeout
    with connect(address, family, timeout) as sock:
        try:
            for chunk in chunks:
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                sock.sendall(chunk)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            error.received = b""
            raise
        return read_all(sock, deadline)


# -- serving ----------------------------------------------------------------


@contextlib.contextmanager
def serving(server, poll_interval=POLL_INTERVAL, stop_timeout=None):
    """Serve in a thread for the block; on exit shutdown(), join, server_close().

    shutdown() must come from another thread than serve_forever(), and
    server_close() only after the loop has stopped: this does both, in that
    order, even when the block raises.  An exception that ends
    serve_forever() itself (a verify_request() that raises, say) is
    re-raised on exit instead of being printed by the thread, unless the
    block is already raising.

    Unbounded (stop_timeout=None), exit waits as long as stopping takes: on
    a sync server shutdown() waits for the request in progress, and on a
    threading server server_close() waits for every non-daemon handler
    thread.  With stop_timeout, the serving thread is a daemon, the whole
    stop runs in a daemon thread, and if it has not finished within
    stop_timeout seconds the listening socket is closed (no client can
    connect any more) and TimedOut is raised; the stop goes on in the
    background and completes once the stuck handler returns.
    """
    outcome = {}

    def serve():
        try:
            server.serve_forever(poll_interval)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    bounded = stop_timeout is not None
    loop = threading.Thread(target=serve, name="serve_forever", daemon=bounded)
    loop.start()
    body_raised = True
    try:
        yield server
        body_raised = False
    finally:
        def stop():
            server.shutdown()
            loop.join()
            server.server_close()

        if not bounded:
            stop()
        else:
            stopper = threading.Thread(target=stop, name="stop server", daemon=True)
            stopper.start()
            stopper.join(stop_timeout)
            if stopper.is_alive():
                listener = getattr(server, "socket", None)
                if listener is not None:
                    listener.close()
                raise TimedOut(
                    f"the server did not stop within {stop_timeout:g} s because "
                    f"a handler was still running.", stopper)
    if "error" in outcome and not body_raised:
        raise outcome["error"]


# -- bounded runs ------------------------------------------------------------


def run_bounded(function, *args, timeout, what, **kwargs):
    """Call function(*args, **kwargs) in a daemon thread; wait at most timeout seconds.

    Returns what it returns and re-raises what it raises (with its own
    traceback).  If it is still running after timeout seconds, raises
    TimedOut(f"{what} did not finish within {timeout} s."), leaving the
    daemon thread (on the exception as ``thread``) to finish or not.
    """
    outcome = {}

    def run():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"bounded: {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimedOut(f"{what} did not finish within {timeout:g} s.", worker)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# -- quiet servers -------------------------------------------------------------


def recording_errors(server_class):
    """A subclass of server_class whose handle_error() records instead of printing.

    Each instance has ``errors``, a list of (client_address, exception)
    pairs in the order the handlers failed; nothing goes to stderr.  Works
    for both implementations.  Errors in a forked child (ForkingMixIn) stay
    in the child: the parent's list does not see them.
    """

    class Recording(server_class):
        def __init__(self, *args, **kwargs):
            self.errors = []
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            # Called inside the except block that caught the handler's error.
            self.errors.append((client_address, sys.exc_info()[1]))

    Recording.__name__ = Recording.__qualname__ = f"Recording{server_class.__name__}"
    Recording.__doc__ = (f"{server_class.__name__} whose handle_error() records "
                         f"(client_address, exception) in self.errors.")
    return Recording


# -- watched connections (lessons 01 and 06) -------------------------------------
#
# The mistake lessons 01 and 06 are about, a loop that ignores recv() == b'',
# never blocks again once the client has gone: it spins, and no thread can stop
# another from the outside.  So the checks hand the learner's handler a watched
# connection, which counts the empty reads itself and raises once there are
# clearly too many.

#: Empty reads allowed on one watched connection.  A correct loop needs one; a
#: few more are harmless (a helper that looks twice); a spinning loop makes
#: millions, so any small bound tells the two apart without timing anything.
MAX_EMPTY_READS = 20


class ReadAfterEOF(Exception):
    """The code under check kept reading a connection that had ended.

    Deliberately not an OSError: code that catches socket errors to carry
    on must not swallow it and go back to spinning.  (Code that catches
    every Exception does swallow it; the watched connection remembers that
    it raised, so the check reports the spin anyway.)
    """


class WatchedConnection(socket.socket):
    """A connected socket that refuses to be read in a busy loop after EOF.

    Methods for the caller:

    - watching(conn, timeout, max_piece=None): a class method that moves an
      accepted connection into a new watched connection (conn is left
      detached, its fd closed by closing the watched one).

    Attributes: ``max_piece``, if set, the most bytes one read returns (a
    real network may cut a stream anywhere; this makes the cut certain);
    ``empty_reads``, how many reads returned nothing; ``spun``, True once a
    read went past MAX_EMPTY_READS and raised ReadAfterEOF.

    ``recv`` and ``recv_into`` (which ``makefile()`` files use) are watched;
    a subclass may watch more (lesson 06 cuts sends too).
    """

    max_piece = None
    empty_reads = 0
    spun = False

    @classmethod
    def watching(cls, conn, timeout, max_piece=None):
        """Move accepted connection conn into a new cls with timeout and max_piece."""
        watched = cls(conn.family, conn.type, conn.proto, fileno=conn.detach())
        watched.settimeout(timeout)
        watched.max_piece = max_piece
        return watched

    def recv(self, bufsize, *flags):
        """Like socket.recv, at most max_piece bytes, counting the b'' results."""
        if self.max_piece:
            bufsize = min(bufsize, self.max_piece)
        data = super().recv(bufsize, *flags)
        if not data and bufsize:
            self._note_empty_read()
        return data

    def recv_into(self, buffer, nbytes=0, *flags):
        """Like socket.recv_into, at most max_piece bytes, counting empty reads."""
        wanted = nbytes or len(buffer)
        if self.max_piece:
            wanted = min(wanted, self.max_piece)
        count = super().recv_into(buffer, wanted, *flags)
        if not count and wanted:
            self._note_empty_read()
        return count

    def _note_empty_read(self):
        """Allow a few empty reads; after that the caller is spinning."""
        self.empty_reads += 1
        if self.empty_reads > MAX_EMPTY_READS:
            self.spun = True
            raise ReadAfterEOF(f"recv() returned b'' {self.empty_reads} times")

