"""Request handlers: one instance per request, and all the work in __init__.

The server builds a handler for every request and forgets it afterwards, so
a handler keeps per-request state in ``self`` and shared state on the
server (``self.server``).  Its constructor runs three hooks:

```text
setup()        prepare (wrap the socket in files, set options)
handle()       serve the request: the method you write
finish()       clean up; runs even when handle() raises
```

The two subclasses make both kinds of request look like a pair of files,
``rfile`` to read from and ``wfile`` to write to, so the same ``handle()``
can often serve a TCP connection and a UDP datagram alike.

The order of the steps in each setup() and finish() is the stdlib's on
purpose: it decides which error a handler sees first and what is already
open when one is raised, which programs can observe.
"""

import io
import socket

__all__ = ["BaseRequestHandler", "StreamRequestHandler",
           "DatagramRequestHandler"]


class BaseRequestHandler:
    """Handle one request: setup(), handle(), then finish() in all cases.

    Attributes set before setup():
        request: the connection socket, or (data, server socket) for UDP.
        client_address: who sent the request.
        server: the server that received it.

    May be overridden: setup(), handle(), finish() (each does nothing here).
    The constructor runs them: may be extended, do not override.
    """

    def __init__(self, request, client_address, server):
        """Keep the request's details, then run the three hooks."""
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            # Cleanup must not depend on handle() succeeding; the exception
            # itself still travels up to the server's handle_error().
            self.finish()

    def setup(self):
        """Prepare for handle(). May be overridden."""

    def handle(self):
        """Serve the request. Override this."""

    def finish(self):
        """Clean up after handle(), even if it raised. May be overridden."""


class _WholeWrites(io.BufferedIOBase):
    """wfile for wbufsize == 0: every write() is on its way when it returns.

    ``socket.makefile("wb", 0)`` would give a raw file, whose write() may
    send only part of the data and say so in its return value, which
    handlers rarely check.  This file sends everything (sendall) and
    returns the byte count, as the stdlib's unbuffered wfile does.  Like
    that one, it is a BufferedIOBase (so TextIOWrapper accepts it) whose
    close() leaves the socket to the server.
    """

    def __init__(self, sock):
        self._sock = sock

    def writable(self):
        return True

    def fileno(self):
        return self._sock.fileno()

    def write(self, data):
        self._sock.sendall(data)
        with memoryview(data) as view:  # len() would count items, not bytes
            return view.nbytes


class StreamRequestHandler(BaseRequestHandler):
    """A handler for connections: read self.rfile, write self.wfile.

    Class variables:
        rbufsize: buffer size of rfile (-1: the default size).
        wbufsize: buffer size of wfile; 0 (the default) sends every write
            at once, anything else needs flush() (finish() flushes).
        timeout: if not None, the socket timeout of the connection, so a
            silent client raises TimeoutError instead of blocking forever.
        disable_nagle_algorithm: if True, set TCP_NODELAY so small writes
            leave at once instead of waiting to be combined.

    Attributes set by setup(): connection (the socket), rfile, wfile.
    """

    rbufsize = -1
    wbufsize = 0
    timeout = None
    disable_nagle_algorithm = False

    def setup(self):
        """Apply the socket options and open rfile and wfile."""
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = _WholeWrites(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self):
        """Flush what is left in wfile, then close both files."""
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError:
                # The client may be gone; there is nobody left to tell.
                pass
        self.wfile.close()
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """A handler for datagrams: rfile holds the datagram, wfile the reply.

    Whatever handle() writes to wfile is sent back to the client as one
    datagram by finish() (an empty one if nothing was written).

    Attributes set by setup(): packet (the data), socket (the server's
    socket), rfile, wfile.
    """

    def setup(self):
        """Wrap the datagram in rfile and open an empty wfile."""
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self):
        """Send the reply gathered in wfile as one datagram."""
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
