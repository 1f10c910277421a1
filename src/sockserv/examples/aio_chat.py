"""The classroom chat on asyncio: one event loop, a coroutine per client, the same protocol.

sockserv.examples.chat is the reference: this server speaks the same protocol (docs/chat-
protocol.md) under the same classroom-safety rules, and it does so by running the same code.
What it shares, unchanged:

    chat_input      ChatInput: telnet, framing, decoding, cleaning, parsing, flood limit
    chat_protocol   the server's lines (render) and the limits
    chat_registry   Registry: names, broadcasts in one order, max_clients
    chat_console    the teacher's console
    chat            ChatRequestHandlerMixIn's carry_out(), obey(), tell() and send(): what a
                    line asks for, done

What is its own is only what threads did for the socketserver version:

- Reading.  A coroutine per client awaits reader.read() with the idle deadline (asyncio.
  wait_for), where the threaded handler waits in poll() and recv().  The deadline still moves
  only when a complete line arrives.
- Writing.  The threaded server needs an Outbox with a writer thread per client so that a
  client that stops reading blocks nobody.  Here the transport already is such a queue:
  transport.write() never blocks, and the loop sends when the socket can take more.
  `LoopOutbox` gives it the Outbox's interface, which the Registry calls, and its bound:
  past max_pending unsent bytes the client is given up on (kick(): transport.abort()).
- Threads from outside.  Only the loop's thread may touch a transport.  The teacher's console
  and the tests run in other threads, so `server.registry` is a `LoopRegistry`, which runs
  each call on the loop (call_soon_threadsafe) and returns its result; on the loop's own
  thread it calls straight through.  Every broadcast therefore runs on the loop, one at a
  time, which keeps the one global order.
- Leaving.  finish: deregister; let the transport send what is queued (at most
  flush_timeout); send our EOF and read what the client still sends for at most
  linger_timeout (so that a reset cannot destroy "! line too long", as shutdown_request() in
  chat.py explains); close.
- Stopping.  stop() (from any thread) asks the loop to: stop accepting, queue "* server
  shutting down" to everyone, give every transport stop_grace seconds to send it, then shut
  every socket down (their coroutines see the end of the stream and leave as usual; a
  transport with bytes still unsent is aborted) and wait at most stop_grace for them.
"""

import asyncio
import logging
import socket
import struct
import time

from .aio_server import AsyncioServer, settle, start_stream_server, stop_accepting
from .chat import ChatRequestHandlerMixIn, ChatServerMixIn
from .chat_input import ChatInput
from .chat_protocol import LIMITS, check_limits, render
from .chat_registry import Full, Registry

__all__ = ["AsyncioChatServer", "LoopOutbox", "LoopRegistry", "make_server"]

log = logging.getLogger("sockserv.chat")


def make_server(address, *, max_line=LIMITS.max_line, idle_timeout=LIMITS.idle_timeout,
                max_clients=LIMITS.max_clients, rate=LIMITS.rate, burst=LIMITS.burst,
                clock=time.monotonic):
    """Return a bound, listening asyncio chat server; the options are chat.make_server's."""
    return AsyncioChatServer(address, max_line=max_line, idle_timeout=idle_timeout,
                             max_clients=max_clients, rate=rate, burst=burst, clock=clock)


class LoopOutbox:
    """The Outbox interface (put, close, kick, pending, overflowed) over an asyncio transport.

    put() never blocks: transport.write() queues what the socket cannot take now.  The put
    that would take the unsent bytes past limit returns False (once) and is dropped; the
    caller then calls kick(), which takes nothing more and ends the client's reading at once
    (its coroutine leaves), while the transport still sends what it holds, so that the
    client's stream ends after a whole line (the kernel may hold half of one); the leaving
    coroutine aborts it if that takes more than flush_timeout.  close(hang_up=True) is the
    teacher's kick: the transport sends what is queued, then closes, and the client's
    coroutine sees the end of its stream.  Loop thread only.
    """

    __slots__ = ("_transport", "_reader", "_limit", "_closed", "_dead", "overflowed")

    def __init__(self, transport, reader, limit):
        self._transport = transport
        self._reader = reader
        self._limit = limit
        self._closed = False
        self._dead = False
        self.overflowed = False

    @property
    def pending(self):
        """Bytes written to the transport and not yet handed to the kernel."""
        return self._transport.get_write_buffer_size()

    def put(self, data):
        """Queue data; return False if this put overflowed the limit."""
        if self._closed or self._dead or self._transport.is_closing():
            return True     # leaving: its coroutine deregisters it at its next turn
        pending = self._transport.get_write_buffer_size()
        # As Outbox: an empty queue takes any one chunk, then the limit holds.
        if pending and pending + len(data) > self._limit:
            self.overflowed = True
            self._dead = True
            return False
        self._transport.write(data)
        return True

    def close(self, hang_up=False):
        """Accept nothing more; with hang_up, close the connection once the queue is sent."""
        self._closed = True
        if hang_up:
            self._transport.close()

    def kick(self):
        """Give up on the client: take nothing more, end its reading, close once sent."""
        self._dead = True
        self._transport.close()
        self._reader.feed_eof()     # its coroutine's read() returns b"" now


class LoopRegistry:
    """The server's Registry, safe to call from any thread: each call runs on the loop.

    Offers the Registry's methods (join, leave, rename, say, names, pending, close, announce,
    remove), closed, max_clients and len().  See aio_server.AsyncioServer.call_in_loop.
    """

    def __init__(self, registry, server):
        self._registry = registry
        self._server = server

    def __len__(self):
        return self._server.call_in_loop(len, self._registry)

    @property
    def closed(self):
        """True once close() has been called."""
        return self._server.call_in_loop(lambda: self._registry.closed)

    @property
    def max_clients(self):
        """The most clients registered at once."""
        return self._registry.max_clients

    def __getattr__(self, name):
        method = getattr(self._registry, name)

        def on_loop(*args):
            return self._server.call_in_loop(method, *args)
        on_loop.__name__ = name
        return on_loop


class ChatSession:
    """One client of the asyncio chat: its nick, outbox, peer, and why it left.

    carry_out(), obey(), tell() and send() are the threaded handler's own functions (they
    touch only self.server.registry, self.nick, self.outbox and each other), so a line does
    exactly the same thing on both servers.
    """

    carry_out = ChatRequestHandlerMixIn.carry_out
    obey = ChatRequestHandlerMixIn.obey
    tell = ChatRequestHandlerMixIn.tell
    send = ChatRequestHandlerMixIn.send

    def __init__(self, server, peer, outbox):
        self.server = server
        self.peer = peer
        self.outbox = outbox
        self.nick = None
        self.reason = "never joined"


class AsyncioChatServer(AsyncioServer):
    """The chat server on one event loop; see the module docstring.

    Methods for the caller: serve_forever(), stop() (as chat.ChatServerMixIn's).
    Class variables: max_pending, flush_timeout, stop_grace, linger_timeout,
    request_queue_size, recv_size (as the threaded server's).
    Instance variables: max_line, idle_timeout, rate, burst, clock, registry (a LoopRegistry).
    """

    max_pending = ChatServerMixIn.max_pending
    flush_timeout = ChatServerMixIn.flush_timeout
    stop_grace = ChatServerMixIn.stop_grace
    linger_timeout = ChatServerMixIn.linger_timeout
    request_queue_size = ChatServerMixIn.request_queue_size
    recv_size = ChatRequestHandlerMixIn.recv_size

    def __init__(self, server_address, *, max_line=LIMITS.max_line,
                 idle_timeout=LIMITS.idle_timeout, max_clients=LIMITS.max_clients,
                 rate=LIMITS.rate, burst=LIMITS.burst, clock=time.monotonic):
        check_limits(max_line, idle_timeout, max_clients, rate, burst)
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._registry = Registry(max_clients)
        self.registry = LoopRegistry(self._registry, self)
        self._connections = {}      # task -> StreamWriter, while its coroutine runs
        self._transports = set()    # every open connection, its coroutine started or not
        super().__init__(server_address)

    async def start(self):
        self._server = await start_stream_server(self._serve_client, self.socket,
                                                 self._transports)

    async def _serve_client(self, reader, writer):
        """The life of one connection: join, serve its lines, leave."""
        task = asyncio.current_task()
        self._connections[task] = writer
        transport = writer.transport
        # Chat lines are small and wanted at once: no Nagle delay, as in the threaded server.
        # asyncio's transports set TCP_NODELAY only on sockets whose proto is IPPROTO_TCP,
        # and an accepted socket here has proto 0, so it is not set for us.  It matters for
        # more than speed: each line then leaves in segments of its own, so a client cut off
        # by a reset has received whole lines.
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = writer.get_extra_info("peername")[:2]
        session = ChatSession(self, f"{host}:{port}", LoopOutbox(transport, reader, self.max_pending))
        task.set_name(f"chat-client {session.peer}")
        try:
            if self._join(session):
                session.reason = await self._serve_lines(session, reader)
        except Exception as exc:     # a bug: log it, keep serving the others
            log.error("error serving %s: %r", session.peer, exc)
            log.debug("the traceback of that error:", exc_info=True)
        finally:
            try:
                await self._leave(session, reader, writer)
            finally:
                del self._connections[task]

    def _join(self, session):
        """Register the client (it is welcomed); False if it is refused."""
        try:
            session.nick = self._registry.join(session.outbox)
        except Full:
            session.outbox.put(render("full"))
            session.reason = "server full"
            log.info("refused %s: server full", session.peer)
            return False
        if session.nick is None:
            session.outbox.put(render("shutdown"))
            session.reason = "server shutting down"
            return False
        log.info("%s joined from %s", session.nick, session.peer)
        return True

    async def _serve_lines(self, session, reader):
        """Read and obey lines until the client leaves; return the reason it left."""
        loop = asyncio.get_running_loop()
        incoming = ChatInput(self.max_line, self.rate, self.burst, self.clock)
        deadline = loop.time() + self.idle_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                session.tell("idle")
                return "idle timeout"
            try:
                data = await asyncio.wait_for(reader.read(self.recv_size), left)
            except asyncio.TimeoutError:
                continue
            except OSError as exc:
                return f"connection error: {exc}"
            if not data:
                return "disconnected"
            actions = incoming.feed(data)
            if actions.saw_line:
                deadline = loop.time() + self.idle_timeout
            reason = session.carry_out(actions)
            if reason is not None:
                return reason

    async def _leave(self, session, reader, writer):
        """Deregister, deliver the last lines, send EOF, linger, close."""
        registry, outbox = self._registry, session.outbox
        if session.nick is not None:
            if not registry.leave(session.nick):
                session.reason = "removed by the teacher"
            elif registry.closed:
                session.reason = "server shutting down"
            elif outbox.overflowed:
                session.reason = "stopped reading (too much output pending)"
            log.info("%s left (%s)", session.nick, session.reason)
        outbox.close()
        transport = writer.transport
        if not await _flushed(writer, self.flush_timeout):
            _reset(transport)       # it is not reading: give up on the last lines
        if not transport.is_closing():
            try:
                writer.write_eof()
                await asyncio.wait_for(_discard_until_eof(reader), self.linger_timeout)
            except (OSError, asyncio.TimeoutError):
                pass
        writer.close()

    async def finish(self):
        """stop(), on the loop: tell everyone, give them stop_grace, then end every client."""
        stop_accepting(self._server, self.socket)
        await settle(lambda: len(self._transports))
        boxes = self._registry.close(render("shutdown"))
        log.info("stopping: %d client(s) connected", len(boxes))
        writers = list(self._connections.values())
        if writers:
            # Stage 1: every transport sends the notice; the slow ones miss their chance.
            flushing = [asyncio.ensure_future(_flushed(writer, None)) for writer in writers]
            _, late = await asyncio.wait(flushing, timeout=self.stop_grace)
            for task in late:
                task.cancel()
        for writer in writers:
            # Stage 2: end every stream; the coroutines leave as usual.
            if writer.transport.get_write_buffer_size():
                _reset(writer.transport)
                continue
            sock = writer.get_extra_info("socket")
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        await settle(lambda: len(self._connections))
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.stop_grace)
            if late:
                log.error("stop: %d connection(s) did not finish in time", len(late))
                for task in late:
                    _reset(self._connections[task].transport)
                    task.cancel()
                await asyncio.wait(late, timeout=self.stop_grace)
        for transport in list(self._transports):    # whatever is left: never leave it open
            _reset(transport)
        self._server.close()

    def task_names(self):
        """The names of the client coroutines' tasks (from any thread)."""
        return self.call_in_loop(lambda: sorted(task.get_name() for task in self._connections))


async def _flushed(writer, timeout):
    """Wait until the transport has handed every queued byte to the kernel; True if so.

    drain() alone only waits until the buffer is below its high-water mark: with a mark of 0
    it waits for the buffer to be empty.  A transport that is closing sends what it holds and
    then closes: wait for that.
    """
    transport = writer.transport
    try:
        if transport.is_closing():
            await asyncio.wait_for(writer.wait_closed(), timeout)
            return True
        transport.set_write_buffer_limits(high=0)
        await asyncio.wait_for(writer.drain(), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    return not transport.get_write_buffer_size()


def _reset(transport):
    """Abort a connection whose last bytes cannot be delivered, with a reset (SO_LINGER 0).

    The kernel may hold the first half of a line: ended with a FIN, the client would see a
    stream that looks complete and ends mid-line; a reset says that something was lost.
    """
    sock = transport.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, AttributeError):
        pass    # already closed
    transport.abort()


async def _discard_until_eof(reader):
    """Read and drop what the client still sends, until its end of stream."""
    while await reader.read(65536):
        pass
