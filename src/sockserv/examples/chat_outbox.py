"""One client's outgoing lines: a bounded queue and the thread that writes it to the socket.

Why a queue and a thread per client?  A chat server sends every message to every client.  If
the thread that handles Alice's line called sendall() on Bob's socket itself, then Bob's closed
laptop lid (his receive buffer full, sendall() blocked) would stop Alice, and, because the
broadcast walks the client list under a lock, everyone else too.  So a broadcast only appends
bytes to each client's `Outbox`, which never blocks, and each outbox has its own writer thread
that empties it into its socket; a stuck sendall() stalls that one writer and nobody else.

The queue is bounded: a client that stops reading must not make the server's memory grow
without limit.  When a put() would take the queued bytes past the limit, the outbox gives up on
its client: it drops what was queued, refuses everything after, and the caller calls kick(),
which shuts the socket down so that the writer's sendall() and the handler's recv() both
return and the client leaves in the ordinary way.

    put() ---> [ bytes, bytes, ... ] ---> writer thread ---> sock.sendall()
    (any thread, never blocks)             (one per client, may block)

An outbox never closes its socket: the request handler owns it and closes it.  release() tells
the outbox that the socket is about to be closed, after which kick() no longer touches it (the
descriptor number may already belong to another connection).
"""

import collections
import socket
import threading

__all__ = ["Outbox"]


class Outbox:
    """A bounded byte queue for one client, emptied by its own writer thread.

    Methods for the handler and the registry (any thread):

    - start()         start the writer thread.
    - put(data)       queue bytes; never blocks.  Returns False exactly once, from the put that
                      overflowed the limit; the caller must then call kick().
    - close(hang_up=False)   accept nothing more; the writer sends what is queued, then ends;
                      with hang_up, it then shuts the socket down, which ends the client's
                      handler too (the teacher's "kick": the last line is delivered first).
    - kick()          give up on the client: drop the queue, shut the socket down.
    - wait(timeout)   wait for the writer thread to end; True if it has.
    - release()       the socket is about to be closed; kick() will leave it alone.

    Read-only: `pending` (bytes queued or being sent), `overflowed`, `error` (the OSError that
    ended the writer, if one did).
    """

    def __init__(self, sock, limit, *, thread_name):
        self._sock = sock
        self._limit = limit
        self._cond = threading.Condition()
        self._chunks = collections.deque()
        self._pending = 0
        self._closed = False      # no more puts; the writer drains the queue and ends
        self._dead = False        # nothing more will be sent at all
        self._released = False    # the socket is no longer ours to touch
        self._hang_up = False     # once drained, shut the socket down
        self.overflowed = False
        self.error = None
        # A daemon thread: whatever goes wrong, a writer must never keep the process alive.
        self._thread = threading.Thread(target=self._write_loop, name=thread_name, daemon=True)

    @property
    def pending(self):
        """Bytes handed to this outbox and not yet sent."""
        with self._cond:
            return self._pending

    def start(self):
        """Start the writer thread."""
        self._thread.start()

    def put(self, data):
        """Queue data for sending; return False if this put overflowed the limit."""
        with self._cond:
            if self._closed or self._dead:
                return True
            # An empty queue takes any one chunk, so that a limit smaller than a line
            # cannot lock a client out; after that, the limit holds.
            if self._pending and self._pending + len(data) > self._limit:
                self.overflowed = True
                self._dead = True
                self._chunks.clear()
                self._cond.notify()
                return False
            self._chunks.append(data)
            self._pending += len(data)
            self._cond.notify()
            return True

    def close(self, hang_up=False):
        """Accept nothing more; the writer sends what is queued and then ends (and hangs up)."""
        with self._cond:
            self._closed = True
            self._hang_up = self._hang_up or hang_up
            self._cond.notify()

    def kick(self):
        """Drop the queue and shut the socket down, waking its reader and writer."""
        with self._cond:
            self._dead = True
            self._chunks.clear()
            self._cond.notify()
            if self._released:
                return
            try:
                # shutdown(), unlike close(), wakes a thread blocked in sendall() or recv()
                # on this socket, and it never blocks itself.
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass    # already disconnected

    def wait(self, timeout):
        """Wait up to timeout seconds for the writer to end; return True if it has."""
        if self._thread.ident is None:
            return True     # never started
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def release(self):
        """Promise not to touch the socket any more (its owner is about to close it)."""
        with self._cond:
            self._released = True

    def _write_loop(self):
        """Send queued bytes until closed and drained, or dead."""
        while True:
            with self._cond:
                while not (self._chunks or self._closed or self._dead):
                    self._cond.wait()
                if self._dead:
                    return
                if not self._chunks:
                    hang_up = self._hang_up
                    break
                # Everything queued so far goes out in one sendall(): under load a writer
                # wakes once for many lines instead of once per line.
                data = b"".join(self._chunks)
                self._chunks.clear()
            try:
                self._sock.sendall(data)
            except OSError as exc:      # reset, broken pipe, timeout, or kicked
                self.error = exc
                self.kick()
                return
            with self._cond:
                self._pending -= len(data)
        if hang_up:
            self.kick()     # everything is sent: now wake the handler out of its recv()
