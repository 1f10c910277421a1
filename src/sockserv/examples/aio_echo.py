"""The Echo server (RFC 862) on asyncio: one event loop, a coroutine per TCP client.

Same contract as sockserv.examples.echo, which is the reference: every byte a TCP client sends
comes back unchanged until the client closes or shuts down its sending side (it then gets
everything, then EOF), and every UDP datagram goes back to its sender.  make_server() binds at
once (so a port in use is an OSError here, as with socketserver) and returns an AsyncioServer
(aio_server): serve_forever() in a thread, stop() from another.

What socketserver did for us and we now do ourselves:

- a connection per coroutine, not per thread: the loop resumes `_echo()` whenever its socket
  has data; `await writer.drain()` is the back-pressure (a client that stops reading stops
  only its own coroutine, once the transport's buffer is above its high-water mark);
- half-close: asyncio's stream protocol keeps the transport open for writing after the
  client's EOF, so what was read is still sent before our own close;
- stop(): the connections are ours to end; finish() aborts every transport (which wakes the
  coroutine's read or drain) and waits, bounded, for the coroutines to end.

Logging goes to "sockserv.echo", the same lines as the threaded server's.
"""

import asyncio
import logging

from .aio_server import AsyncioServer, settle, start_stream_server, stop_accepting
from .echo import _format_address

__all__ = ["AsyncioEchoServer", "AsyncioUDPEchoServer", "make_server"]

logger = logging.getLogger("sockserv.echo")


class AsyncioEchoServer(AsyncioServer):
    """TCP echo on one event loop; see the module docstring."""

    #: Bytes asked for per read, as the threaded handler's recv().
    bufsize = 65536
    #: Seconds finish() waits for the aborted connections' coroutines.
    stop_grace = 1.0

    def __init__(self, server_address):
        super().__init__(server_address)
        self._connections = {}      # task -> its StreamWriter
        self._transports = set()    # every open connection, its coroutine started or not

    async def start(self):
        self._server = await start_stream_server(self._echo, self.socket, self._transports)

    async def _echo(self, reader, writer):
        """Echo one connection until EOF or a connection error."""
        self._connections[asyncio.current_task()] = writer
        peer = _format_address(writer.get_extra_info("peername"))
        logger.info("%s connected", peer)
        echoed = 0
        reason = "closed"
        try:
            while data := await reader.read(self.bufsize):
                writer.write(data)
                await writer.drain()
                echoed += len(data)
        except OSError as exc:          # reset by the client, or aborted by stop()
            reason = exc.strerror or type(exc).__name__
        finally:
            del self._connections[asyncio.current_task()]
            writer.close()
        logger.info("%s left (%s) after %d bytes", peer, reason, echoed)

    async def finish(self):
        stop_accepting(self._server, self.socket)
        await settle(lambda: len(self._transports))
        for transport in list(self._transports):
            transport.abort()
        # Coroutines of connections made just now may still start: they see the end at once.
        await settle(lambda: len(self._connections))
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=self.stop_grace)
        self._server.close()
        logger.info("server stopped")


class _DatagramEcho(asyncio.DatagramProtocol):
    """Sends each datagram back to its sender, unchanged."""

    def __init__(self, sock):
        self.sock = sock    # the bound socket the transport reads: for empty datagrams

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if data:
            self.transport.sendto(data, addr)
        else:
            # An empty datagram is a datagram too (RFC 862 echoes it), but the transport's
            # sendto() drops empty data before 3.13; the socket itself sends it.
            try:
                self.sock.sendto(data, addr)
            except OSError as exc:
                self.error_received(exc)
                return
        logger.debug("echoed %d bytes to %s", len(data), _format_address(addr))

    def error_received(self, exc):
        logger.info("cannot echo: %s", exc)


class AsyncioUDPEchoServer(AsyncioServer):
    """UDP echo on one event loop: one protocol object for every datagram."""

    udp = True

    async def start(self):
        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _DatagramEcho(self.socket), sock=self.socket)

    async def finish(self):
        self._transport.close()
        logger.info("server stopped")


def make_server(address, *, udp=False):
    """Return an asyncio echo server bound to address; run serve_forever() on it."""
    return AsyncioUDPEchoServer(address) if udp else AsyncioEchoServer(address)
