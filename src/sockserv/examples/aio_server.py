"""The shell of the course's asyncio servers: bound at once, served by an event loop, stoppable.

The Echo and Chat servers on asyncio (aio_echo, aio_chat) have the same outside as their
socketserver twins, so that the command line, the tests and the benchmarks drive every engine
the same way:

    server = make_server(("127.0.0.1", 0), ...)   # bound and listening: errors show here
    server.server_address                          # the real port when 0 was asked for
    thread = threading.Thread(target=server.serve_forever); thread.start()
    ...
    server.stop()                                  # from any other thread; bounded

What differs is inside.  serve_forever() runs one asyncio event loop (asyncio.run()) in the
thread that calls it, and every client is a coroutine on that loop, not a thread.  stop() is
the one method another thread calls: it hands the request to the loop with
call_soon_threadsafe() (nothing else of the loop is safe to touch from outside), waits, with a
deadline, for serve_forever() to finish, and closes the socket.

Why bind in the constructor rather than in the loop?  So that "port in use" or "unknown host"
is an OSError raised by make_server(), exactly as socketserver raises it, and the command
line's one-line error applies unchanged.  The bound socket is then handed to asyncio
(start_server(sock=...), create_datagram_endpoint(sock=...)), which owns and closes it.

Subclasses provide two coroutines: start() (begin serving self.socket) and finish() (tell the
clients, end their connections; it should not take longer than about stop_grace * 2).
"""

import asyncio
import concurrent.futures
import os
import socket
import threading

__all__ = ["AsyncioServer", "bind", "settle", "start_stream_server", "stop_accepting"]


def bind(address, *, udp=False, reuse_address=None, backlog=128):
    """Return an IPv4 socket bound to address (and listening, for TCP), as socketserver binds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        if reuse_address is None:
            # As the socketserver versions decide: POSIX only (on Windows SO_REUSEADDR lets
            # a second server share the port), and never for UDP (Linux shares it too).
            reuse_address = os.name == "posix" and not udp
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if not udp:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def stop_accepting(server, sock):
    """Accept no more connections on sock, served by the asyncio Server server.

    Not server.close() yet: a connection accepted by the same loop turn is still being set
    up, and once the server is closed that set-up fails (CPython 3.10-3.12 log "Error on
    transport creation" and leave the accepted socket open until garbage collection).  So
    first stop reading the listening socket (selector loops), let the loop finish what was
    accepted, and close the server last.  Where the loop has no remove_reader() (Windows'
    proactor loop), close at once.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.remove_reader(sock.fileno())
    except NotImplementedError:
        server.close()


async def settle(count, turns=10, most=100):
    """Let the loop run until count() has not changed for turns turns (at most most turns).

    After the listening server is closed, connections already accepted are still on their
    way to their coroutine (accept, transport, protocol, task: a loop turn each); a stop that
    looked at the connections at once would miss them, and they would be left open.
    """
    last, still = count(), 0
    for _ in range(most):
        await asyncio.sleep(0)
        now = count()
        still = still + 1 if now == last else 0
        if still >= turns:
            return
        last = now


class _TrackedStreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, which also keeps its transport in a set while connected."""

    def __init__(self, client_connected, transports):
        super().__init__(asyncio.StreamReader(), client_connected)
        self._tracked = transports
        self._tracked_transport = None

    def connection_made(self, transport):
        self._tracked_transport = transport
        self._tracked.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc):
        self._tracked.discard(self._tracked_transport)
        super().connection_lost(exc)


async def start_stream_server(client_connected, sock, transports):
    """asyncio.start_server(client_connected, sock=sock), keeping every open transport in
    the set transports: from the moment a connection is made, before its coroutine runs,
    so that a stop can end connections whose coroutine has not started yet."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _TrackedStreamProtocol(client_connected, transports), sock=sock)


class AsyncioServer:
    """A server whose clients are coroutines on one event loop; see the module docstring.

    Methods for the caller:

    - serve_forever(poll_interval=None): run the loop in this thread until stop(); returns at
      once if stop() came first.  poll_interval is accepted and ignored: the loop sleeps
      until something happens, and stop() wakes it.
    - stop(): from any other thread: ask the loop to stop, wait (bounded) for it, close the
      socket.  Idempotent.  shutdown() is the same, for code written for socketserver.
    - server_close(): close the listening socket (stop() calls it).

    For subclasses: async start() and async finish(); self.loop while serving.

    Class variables: request_queue_size (the listen backlog), stop_timeout (how long stop()
    waits for the loop before giving up on it).
    """

    request_queue_size = 128
    stop_timeout = 3.0
    udp = False

    def __init__(self, server_address):
        self.socket = bind(server_address, udp=self.udp, backlog=self.request_queue_size)
        self.server_address = self.socket.getsockname()
        self.loop = None
        self._state_lock = threading.Lock()
        self._stopping = False
        self._serving = False
        self._stop_event = None     # an asyncio.Event, made in the loop
        self._finished = threading.Event()

    def serve_forever(self, poll_interval=None):
        """Serve on an event loop in this thread until stop(); at once if already stopped."""
        with self._state_lock:
            if self._stopping:
                return
            self._serving = True
        try:
            asyncio.run(self._main())
        finally:
            self.loop = None
            self._finished.set()

    async def _main(self):
        stop_event = asyncio.Event()
        with self._state_lock:
            self.loop = asyncio.get_running_loop()
            self._stop_event = stop_event
            if self._stopping:      # stop() came while the loop was starting
                stop_event.set()
        await self.start()
        await stop_event.wait()
        await self.finish()

    def stop(self):
        """Stop serving and close; from any thread but the loop's own.  Idempotent."""
        with self._state_lock:
            self._stopping = True
            serving = self._serving
            loop, event = self.loop, self._stop_event
        if serving:
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:    # the loop has just closed: nothing left to wake
                    pass
            self._finished.wait(self.stop_timeout)
        self.server_close()

    shutdown = stop

    def server_close(self):
        """Close the listening socket (asyncio closes it too once it owns it)."""
        self.socket.close()

    async def start(self):
        """Begin serving self.socket.  Must be overridden."""
        raise NotImplementedError

    async def finish(self):
        """End every client's connection after stop().  May be overridden."""

    def call_in_loop(self, function, *args, timeout=10.0):
        """Run function(*args) on the loop and return its result; from any thread.

        Directly when there is no loop (not serving, or stopped) or when called from the
        loop's own thread.  For the teacher's console and for tests, which live in other
        threads: the loop's objects are not thread-safe.  timeout only bounds a loop that
        is stuck: one busy with hundreds of connections on a loaded machine can take
        seconds to get to the call (2 s was once too short, with 200 clients and two test
        runs side by side on 2 cores); TimeoutError after it.
        """
        loop = self.loop
        if loop is None or _running_loop() is loop:
            return function(*args)
        future = concurrent.futures.Future()

        def run():
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as exc:    # handed to the caller's thread
                    future.set_exception(exc)
        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:    # the loop closed meanwhile: nothing races with us now
            return function(*args)
        return future.result(timeout)


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
