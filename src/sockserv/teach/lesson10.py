"""Lesson 10's teaching engines, its measurements, and its exercise checks.

The lesson writes the course's two services, echo and chat, three ways and
measures them side by side.  The engines here are deliberately small: they
are what the notebook reads, not the course's full servers (those are in
``sockserv.examples``).  All of them have the serving API of a
``socketserver`` server, ``serve_forever(poll_interval)``, ``shutdown()``,
``server_close()`` and ``server_address``, so ``harness.serving()`` runs any
of them in a thread:

* ``threaded_server(impl, service)`` a ``ThreadingTCPServer`` of impl
  (``socketserver`` or ``sockserv``): one thread per connection, blocking
  sockets, the handler writes straight to its socket;
* ``SelectorEcho`` and ``SelectorChat`` one thread, non-blocking sockets,
  a ``selectors`` loop and a buffer per connection (``Connection``);
* ``AsyncioEcho`` and ``AsyncioChat`` ``asyncio.start_server()`` and
  streams, the event loop run in the serving thread.

Chat here is the smallest chat that shows fan-out: every line a client
sends goes to every other client; a line longer than ``MAX_LINE`` ends
that client's connection.

The lesson measures them with ``sockserv.teach.measure.side_by_side()`` at
its ``SIZES``; ``benchmarks/bench_engines.py`` measures the course's full
servers with the same function.  ``served(engine, service)`` runs one of
them in a child process of its own (``python -m sockserv.teach.lesson10
serve ENGINE SERVICE``), so that its memory is its own and the clients in
the calling process do not share its interpreter lock.

The checks (``check_flush`` and ``check_broadcast``) judge the learner's
code on real sockets, every wait bounded, and answer in one sentence.
"""

import asyncio
import contextlib
import inspect
import selectors
import socket
import socketserver
import sys
import threading
import time

import sockserv

from . import harness, measure
from .checks import ExerciseFailed, check, describe_error, passed, require_filled_in

__all__ = ["ENGINES", "SERVICES", "MAX_LINE", "OUTBOX_LIMIT", "Connection",
           "send_some", "SelectorServer", "SelectorEcho", "SelectorChat",
           "AsyncioServer", "AsyncioEcho", "AsyncioChat", "stalling_broadcast",
           "threaded_server", "make_server", "SIZES", "served", "check_flush",
           "check_broadcast", "slow_reader_scenario"]

#: Engine label -> how it serves; the order of every table and plot.
ENGINES = ("socketserver", "sockserv", "selectors", "asyncio")
SERVICES = ("echo", "chat")

#: The longest chat line, newline included; a longer one ends the connection.
MAX_LINE = 1024

#: Listen queue of every engine: the measurements connect up to 1000 clients
#: in a burst, and a full queue drops a SYN, which costs a 1 s retransmit.
BACKLOG = 1024

#: Bytes a chat server lets wait for one slow client before it drops it.
OUTBOX_LIMIT = 64 * 1024

#: Bounds of the checks (tests shorten some of them).
CLIENT_TIMEOUT = harness.CLIENT_TIMEOUT
STOP_TIMEOUT = harness.STOP_TIMEOUT


# -- selectors: one thread, non-blocking sockets, a buffer per connection -----


def send_some(sock, outbox):
    """Send what a writable non-blocking sock takes now; remove that from outbox.

    send() on a non-blocking socket takes as much as fits in the kernel's
    send buffer and returns the count; the rest must stay in outbox, in
    order, for the next time the socket is writable.
    """
    sent = sock.send(outbox)
    del outbox[:sent]


class Connection:
    """One client of a selectors server: its socket and its two buffers.

    inbox holds bytes received and not yet used (a partial line);
    outbox holds bytes to send that the socket has not taken yet.
    closing means "close once the outbox is empty" (the client half-closed).
    """

    def __init__(self, sock):
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.closing = False


class SelectorServer:
    """A TCP server on one thread: a selectors loop over non-blocking sockets.

    Methods for the caller: serve_forever(poll_interval), shutdown(),
    server_close(), and the context manager (closes).  Methods to override:
    received(conn, data) (bytes arrived) and ended(conn) (the client
    half-closed).  For subclasses: send(conn, data) queues bytes,
    drop(conn) closes a connection, self.connections is every client.

    The loop watches the listening socket and every client for reading, and a
    client for writing only while its outbox holds something: a socket with
    room in its send buffer is always writable, so watching it otherwise
    would wake the loop for nothing, again and again.
    """

    flush = staticmethod(send_some)  # how an outbox is sent (exercise 1 swaps it)

    def __init__(self, server_address):
        self.socket = socket.create_server(server_address, backlog=BACKLOG)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.socket, selectors.EVENT_READ, None)
        # shutdown() writes a byte here, so a loop asleep in select() wakes at once.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self.selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self.connections = set()

    def serve_forever(self, poll_interval=0.5):
        """Serve until shutdown(); poll_interval is kept for the API, shutdown wakes the loop."""
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                for key, events in self.selector.select(poll_interval):
                    if key.data == "wake":
                        self._wake_reader.recv(64)
                    elif key.data is None:
                        self._accept()
                    elif key.data.sock.fileno() != -1:  # not dropped earlier in this turn
                        self._service(key.data, events)
        finally:
            self._stop.clear()
            self._stopped.set()

    def shutdown(self):
        """Stop serve_forever() and wait until it has stopped; call from another thread."""
        self._stop.set()
        self._wake_writer.send(b"!")
        self._stopped.wait()

    def server_close(self):
        """Close every client, the listening socket and the selector."""
        for conn in list(self.connections):
            self.drop(conn)
        self.selector.close()
        self.socket.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server_close()

    def _accept(self):
        try:
            sock, _ = self.socket.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # the client gave up before we got to it
        sock.setblocking(False)
        conn = Connection(sock)
        self.connections.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)

    def _service(self, conn, events):
        try:
            if events & selectors.EVENT_READ:
                data = conn.sock.recv(65536)
                if data:
                    self.received(conn, data)
                else:
                    self.ended(conn)
            if events & selectors.EVENT_WRITE and conn.sock.fileno() != -1:
                self.flush(conn.sock, conn.outbox)
            if conn.sock.fileno() != -1:
                self._watch(conn)
        except (BlockingIOError, InterruptedError):
            pass  # nothing to do after all: the next turn will tell
        except OSError:
            self.drop(conn)  # reset by the peer, broken pipe: this client only

    def _watch(self, conn):
        # Write interest only while there is something to write.
        if conn.closing and not conn.outbox:
            self.drop(conn)
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbox else 0)
        if self.selector.get_key(conn.sock).events != wanted:
            self.selector.modify(conn.sock, wanted, conn)

    def send(self, conn, data):
        """Queue data for conn; the loop sends it when the socket is writable."""
        conn.outbox += data
        self._watch(conn)

    def drop(self, conn):
        """Close conn and forget it (safe to call twice)."""
        if conn in self.connections:
            self.connections.discard(conn)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
            conn.sock.close()

    def received(self, conn, data):
        """Bytes arrived on conn.  Override."""

    def ended(self, conn):
        """The client half-closed: by default, close once the outbox is sent."""
        conn.closing = True


class SelectorEcho(SelectorServer):
    """Echo (RFC 862) on selectors: every byte goes back; EOF closes after the last."""

    def received(self, conn, data):
        self.send(conn, data)


class SelectorChat(SelectorServer):
    """Chat on selectors: each complete line goes to every other client's outbox.

    Framing is ours now: recv() gives whatever bytes have arrived, so they
    go into conn.inbox and only complete lines are taken out.  Back-pressure
    too: a client whose outbox passes OUTBOX_LIMIT is dropped, so one slow
    reader costs bounded memory and never delays the others.
    """

    def received(self, conn, data):
        conn.inbox += data
        while (end := conn.inbox.find(b"\n")) != -1:
            line = bytes(conn.inbox[:end + 1])
            del conn.inbox[:end + 1]
            if len(line) > MAX_LINE:
                self.drop(conn)  # a line too long: this client goes, the others stay
                return
            self.broadcast(conn, line)
        if len(conn.inbox) > MAX_LINE:
            self.drop(conn)

    def broadcast(self, sender, line):
        """Queue line for every client but sender; drop any that fell too far behind."""
        for other in list(self.connections):
            if other is not sender:
                self.send(other, line)
                if len(other.outbox) > OUTBOX_LIMIT:
                    self.drop(other)

    def ended(self, conn):
        self.drop(conn)


# -- asyncio: the same services on streams -------------------------------------


class AsyncioServer:
    """asyncio.start_server() behind the serving API, its loop in the serving thread.

    serve_forever() runs a new event loop (asyncio.run) until shutdown();
    the listening socket is made in __init__, as socketserver does, so the
    address is known before serving starts.  Override handle(reader, writer).
    On stopping, every client's writer is closed by us: from Python 3.12
    Server.wait_closed() waits for the connections to end, and 3.13 added
    Server.close_clients() for this, which 3.10 to 3.12 do not have.
    """

    #: SO_SNDBUF for each client's socket, or None for the system's (which grows
    #: to megabytes on Linux); a check makes it small so a backlog shows soon.
    send_buffer = None

    #: Seconds shutdown() lets clients take what is buffered for them.
    grace = 1.0

    def __init__(self, server_address):
        self.socket = socket.create_server(server_address, backlog=BACKLOG)
        self.server_address = self.socket.getsockname()
        self.writers = set()
        self._loop = None
        self._stop = None
        self._started = threading.Event()
        self._stopped = threading.Event()

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, sock=self.socket,
                                            limit=MAX_LINE, backlog=BACKLOG)
        self._started.set()
        await self._stop.wait()
        server.close()  # no new clients; the connected ones stay connected
        for writer in list(self.writers):
            writer.close()  # sends what is buffered first, then closes
        # close() waits for a client to take its backlog: one that never reads
        # would keep us here for ever, so after a grace period we abort().
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if handlers:
            await asyncio.wait(handlers, timeout=self.grace)
        for writer in list(self.writers):
            writer.transport.abort()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def _client(self, reader, writer):
        if self.send_buffer is not None:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        self.writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # this client went away; the others go on
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def serve_forever(self, poll_interval=0.5):
        """Run the event loop until shutdown(); poll_interval is kept for the API."""
        self._stopped.clear()
        try:
            asyncio.run(self._main())
        finally:
            self._started.set()
            self._stopped.set()

    def shutdown(self):
        """Stop serve_forever() and wait for it; call from another thread."""
        self._started.wait()
        loop = self._loop
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            loop.call_soon_threadsafe(self._stop.set)
        self._stopped.wait()

    def server_close(self):
        """Close the listening socket (asyncio closed it already if it served)."""
        self.socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server_close()

    async def handle(self, reader, writer):
        """Serve one client.  Override."""


class AsyncioEcho(AsyncioServer):
    """Echo on asyncio streams: drain() is the back-pressure, EOF closes."""

    async def handle(self, reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()  # wait while the client is not reading


async def stalling_broadcast(clients, line):
    """Send line to every writer in clients, waiting for each to take it.

    The first version one writes, and the bug of lesson 10: drain() waits
    while that client's buffer is full, so one client that does not read
    stops the broadcast, and the speaker, for everyone.
    """
    for writer in list(clients):
        writer.write(line)
        await writer.drain()


class AsyncioChat(AsyncioServer):
    """Chat on asyncio: readline() frames, broadcast() sends to the others.

    broadcast is an async function (clients, line) called with the set of
    the other clients' writers that are not closing; the class default stalls on a slow client
    (stalling_broadcast), exercise 2 replaces it.
    """

    broadcast = staticmethod(stalling_broadcast)

    async def handle(self, reader, writer):
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_LINE (the stream's limit)
                return
            if not line.endswith(b"\n"):
                return  # EOF (possibly after a partial line)
            # The others, less any being closed: writing to those is wasted.
            others = {other for other in self.writers
                      if other is not writer and not other.is_closing()}
            await self.broadcast(others, line)


# -- threads: socketserver's way -----------------------------------------------------


def threaded_server(impl, service, server_address=harness.LOCALHOST):
    """A ThreadingTCPServer of impl serving service ("echo" or "chat")."""

    class Echo(impl.BaseRequestHandler):
        def handle(self):
            while data := self.request.recv(65536):
                self.request.sendall(data)

    class Chat(impl.StreamRequestHandler):
        def handle(self):
            with self.server.lock:
                self.server.clients.add(self.request)
            try:
                while (line := self.rfile.readline(MAX_LINE + 1)).endswith(b"\n"):
                    with self.server.lock:
                        others = [c for c in self.server.clients if c is not self.request]
                    for other in others:
                        with contextlib.suppress(OSError):
                            other.sendall(line)
            finally:
                with self.server.lock:
                    self.server.clients.discard(self.request)

    class Server(impl.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = BACKLOG

        def __init__(self, *args, **kwargs):
            self.clients = set()
            self.lock = threading.Lock()
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            pass  # a client that vanished mid-measurement is not news

    return Server(server_address, Echo if service == "echo" else Chat)


def make_server(engine, service, server_address=harness.LOCALHOST):
    """A server of engine (one of ENGINES) for service (one of SERVICES)."""
    if engine == "socketserver":
        return threaded_server(socketserver, service, server_address)
    if engine == "sockserv":
        return threaded_server(sockserv, service, server_address)
    classes = {("selectors", "echo"): SelectorEcho, ("selectors", "chat"): SelectorChat,
               ("asyncio", "echo"): AsyncioEcho, ("asyncio", "chat"): AsyncioChat}
    return classes[engine, service](server_address)


# -- measuring, each server in a child process ---------------------------------------


#: The sizes the lesson measures at (sockserv.teach.measure.side_by_side()'s
#: keywords); benchmarks/bench_engines.py --small measures the course's full
#: servers at these sizes too, and by default at larger ones.
SIZES = {"echo_connections": (1, 10, 100), "echo_seconds": 0.2,
         "chat_clients": (100, 1000), "messages": 10}


def served(engine, service, timeout=10.0):
    """Run make_server(engine, service) in a child process; a with block yields (address, pid).

    The child (``python -m sockserv.teach.lesson10 serve ENGINE SERVICE``)
    says where it listens, serves until its stdin closes, then stops,
    closes and exits (measure.served() closes it on leaving the block).
    """
    return measure.served([sys.executable, "-m", "sockserv.teach.lesson10", "serve",
                           engine, service], timeout=timeout)


def _serve_in_child(engine, service):
    measure.raise_open_files_limit(4096)
    server = make_server(engine, service)
    with harness.serving(server):
        host, port = server.server_address[:2]
        print(f"listening on {host}:{port}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


# -- exercise 1: send what the socket takes --------------------------------------------


FLUSH_BYTES = 200_000  # far more than the small buffers below hold


def _pattern(size):
    # Bytes where a lost, doubled or reordered piece shows: a counter, 6 digits a time.
    return b"".join(b"%06d" % (n % 1_000_000) for n in range(size // 6 + 1))[:size]


def _drain(sock):
    received = bytearray()
    with contextlib.suppress(BlockingIOError):
        while data := sock.recv(65536):
            received += data
    return received


def check_flush(flush):
    """Exercise 1: flush(sock, outbox) sends what a writable non-blocking sock takes.

    On a socket pair with small buffers: called whenever the socket is
    writable, flush must return at once (no BlockingIOError, no waiting),
    remove from outbox exactly what was sent (the peer holds the outbox's
    first bytes, the outbox the rest), and in the end deliver every byte in
    order.
    """
    require_filled_in(flush, getattr(flush, "__name__", "flush"))
    data = _pattern(FLUSH_BYTES)
    outbox = bytearray(data)
    sender, receiver = socket.socketpair()
    with sender, receiver, selectors.DefaultSelector() as selector:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sender.setblocking(False)
        receiver.setblocking(False)
        selector.register(sender, selectors.EVENT_WRITE)
        received = bytearray()
        for turn in range(10_000):
            if not outbox:
                break
            check(selector.select(CLIENT_TIMEOUT),
                  f"the socket did not become writable again within {CLIENT_TIMEOUT:g} s after flush().")
            before = len(outbox)
            try:
                harness.run_bounded(flush, sender, outbox, timeout=CLIENT_TIMEOUT,
                                    what="flush(sock, outbox)")
            except harness.TimedOut as error:
                receiver.close()  # unblocks a flush that waits on the peer
                error.thread.join(CLIENT_TIMEOUT)
                raise ExerciseFailed(f"flush() did not return within {CLIENT_TIMEOUT:g} s: "
                                     f"it must send what fits now and leave the rest, "
                                     f"never wait for the peer.") from None
            except BlockingIOError as error:
                raise ExerciseFailed(f"flush() raised {describe_error(error)} on a "
                                     f"non-blocking socket whose buffer was full: call "
                                     f"send() once when writable and keep what it did "
                                     f"not take.") from None
            except Exception as error:
                raise ExerciseFailed(f"flush() raised {describe_error(error)}.") from None
            received += _drain(receiver)
            check(len(outbox) <= before,
                  f"the outbox grew from {before} to {len(outbox)} bytes during flush().")
            check(bytes(received) == data[:len(received)],
                  f"the peer received bytes out of order or repeated after "
                  f"{len(received)} bytes.")
            sent_total = len(received)
            check(sent_total + len(outbox) == len(data),
                  f"after flush() the peer had {sent_total} bytes and the outbox held "
                  f"{len(outbox)}, but they should add up to {len(data)}: remove from "
                  f"the outbox exactly what send() took.")
            if turn == 0:
                check(len(outbox) < before,
                      "flush() sent nothing to a socket that was writable.")
        received += _drain(receiver)
        check(not outbox, f"{len(outbox)} bytes were still in the outbox after "
                          f"10000 writable turns.")
        check(bytes(received) == data, f"the peer received {len(received)} bytes, "
                                       f"not the {len(data)} in the outbox.")
    passed(f"flush() delivered all {len(data)} bytes in order, a piece at a time, "
           f"and never waited.")


# -- exercise 2: a broadcast that drops a slow client ----------------------------------


BROADCAST_LINES = 400
LINE = b"%04d " + b"x" * 994 + b"\n"  # 1000 bytes with a 4-digit number


class _ChatInThread:
    """An AsyncioChat with a given broadcast, served in a thread for a with block."""

    def __init__(self, broadcast):
        class Chat(AsyncioChat):
            send_buffer = 8192  # the backlog builds up in asyncio's buffer, not the kernel's
        Chat.broadcast = staticmethod(broadcast)
        self.server = Chat(harness.LOCALHOST)

    def __enter__(self):
        self._serving = harness.serving(self.server, stop_timeout=STOP_TIMEOUT)
        self._serving.__enter__()
        return self.server

    def __exit__(self, *exc_info):
        return self._serving.__exit__(*exc_info)


def _joined(server, count, deadline):
    while len(server.writers) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the clients did not all join the chat in time")
        time.sleep(0.01)


def slow_reader_scenario(broadcast, seconds=None):
    """Run an AsyncioChat whose broadcast is broadcast; one client never reads.

    A speaker sends BROADCAST_LINES lines of 1000 bytes, each once the fast
    client has the one before (so a reader that keeps up is never more than
    a line behind); a slow client reads nothing until the speaker is done.
    Returns {"fast": lines the fast client got within seconds,
    "slow": lines the slow client got before its connection ended,
    "slow dropped": whether its connection ended before all lines came}.
    """
    seconds = CLIENT_TIMEOUT if seconds is None else seconds
    with _ChatInThread(broadcast) as server:
        address = server.server_address
        slow = socket.socket()  # a small receive window, set before connecting
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(CLIENT_TIMEOUT)
        with slow, harness.connect(address) as fast, harness.connect(address) as speaker:
            slow.connect(address)
            _joined(server, 3, time.monotonic() + CLIENT_TIMEOUT)
            deadline = time.monotonic() + seconds
            fast_got = 0
            buffer = bytearray()
            with contextlib.suppress(OSError):  # a timeout, or the fast client dropped
                for number in range(BROADCAST_LINES):
                    speaker.sendall(LINE % number)
                    while buffer.count(b"\n") <= number:
                        fast.settimeout(max(deadline - time.monotonic(), 1e-3))
                        data = fast.recv(65536)
                        if not data:
                            raise ConnectionError("the fast client was closed")
                        buffer += data
                    fast_got = number + 1
            slow.settimeout(0.5)
            slow_bytes = bytearray()
            ended = False
            try:
                while data := slow.recv(65536):
                    slow_bytes += data
                ended = True  # EOF: the server closed it
            except ConnectionResetError:
                ended = True  # the server aborted it, discarding its backlog
            except OSError:
                pass  # still open, nothing more to read (a timeout)
    slow_got = slow_bytes.count(b"\n")
    return {"fast": fast_got, "slow": slow_got,
            "slow dropped": ended and slow_got < BROADCAST_LINES}


def check_broadcast(broadcast):
    """Exercise 2: an async broadcast(clients, line) that drops a client that falls behind.

    On an AsyncioChat with broadcast plugged in: a client that reads every
    line must get all BROADCAST_LINES within CLIENT_TIMEOUT while another
    client reads nothing, and the one that reads nothing must be
    disconnected before the last line (its backlog bounded).
    """
    require_filled_in(broadcast, getattr(broadcast, "__name__", "broadcast"))
    check(inspect.iscoroutinefunction(broadcast),
          "broadcast must be an async def function, so the chat can await it.")
    try:
        outcome = harness.run_bounded(slow_reader_scenario, broadcast,
                                      timeout=CLIENT_TIMEOUT * 2 + STOP_TIMEOUT + 2,
                                      what="the slow-reader chat")
    except harness.TimedOut:
        raise ExerciseFailed("the chat with a client that never reads did not finish: "
                             "broadcast() must not wait for any one client.") from None
    except (OSError, TimeoutError) as error:
        raise ExerciseFailed(f"the chat failed with {describe_error(error)}.") from None
    check(outcome["fast"] == BROADCAST_LINES,
          f"the client that reads got only {outcome['fast']} of {BROADCAST_LINES} lines "
          f"in {CLIENT_TIMEOUT:g} s: one client that does not read stalled the broadcast.")
    check(outcome["slow dropped"],
          f"the client that never read was still connected after {BROADCAST_LINES} lines "
          f"and got all {outcome['slow']}: its backlog grew without a bound, drop it "
          f"once its buffer holds more than OUTBOX_LIMIT bytes.")
    passed(f"the reading client got all {BROADCAST_LINES} lines and the client that "
           f"never read was dropped before the last one.")


def main(argv):
    """python -m sockserv.teach.lesson10 serve ENGINE SERVICE (used by served())."""
    if len(argv) != 3 or argv[0] != "serve" or argv[1] not in ENGINES or argv[2] not in SERVICES:
        sys.exit(f"usage: python -m sockserv.teach.lesson10 serve "
                 f"{{{','.join(ENGINES)}}} {{{','.join(SERVICES)}}}")
    _serve_in_child(argv[1], argv[2])


if __name__ == "__main__":
    main(sys.argv[1:])
