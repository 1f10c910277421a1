"""The server classes: one listening socket, one loop, one request at a time.

A server owns a socket and a *request handler class*.  Its only job is to
turn "something is ready on my socket" into "a request": an accepted
connection for stream sockets, one datagram for datagram sockets.  Each
request is given to a brand-new handler instance, and what happens in
between is split into small hook methods so that a subclass, or a mix-in
(see ``mixins.py``), can change one step without touching the others::

    serve_forever / handle_request
        -> get_request                  accept() or recvfrom()
        -> verify_request               False refuses the request
        -> process_request              a mix-in runs this in a thread or a child
             -> finish_request          builds the handler: setup/handle/finish
             -> shutdown_request        tells the peer we are done
                  -> close_request      releases our end

The loop waits on a selector with a timeout (``poll_interval``) rather than
blocking in ``accept()``: a blocked ``accept()`` cannot be interrupted from
another thread, whereas a loop that wakes up regularly can notice that
``shutdown()`` asked it to stop, and can run ``service_actions()`` (the
forking mix-in reaps its children there).

Everything here handles one request at a time, in the serving thread.
"""

import selectors
import socket
import sys
import threading
import time
import traceback

__all__ = ["BaseServer", "TCPServer", "UDPServer"]
if hasattr(socket, "AF_UNIX"):
    __all__ += ["UnixStreamServer", "UnixDatagramServer"]

# poll() has no limit on descriptor numbers, unlike select(); a server
# watches a single descriptor, so nothing fancier (epoll, kqueue) pays off.
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)


class BaseServer:
    """The request loop, independent of any kind of socket.

    For the caller:
        serve_forever(poll_interval=0.5), shutdown(), handle_request(),
        server_close(), fileno(), and use as a context manager
        (``with`` calls server_close on exit).

    May be overridden:
        server_bind(), server_activate(), get_request(), verify_request(),
        process_request(), shutdown_request(), close_request(),
        handle_error(), handle_timeout(), service_actions(), server_close().

    For subclasses:
        finish_request() builds the handler; fileno() must return the
        descriptor the loop waits on.

    Class variables:
        timeout: seconds handle_request() waits, or None to wait forever.
    """

    timeout = None

    def __init__(self, server_address, RequestHandlerClass):
        """Remember the address and handler class; open nothing yet."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        # Set when a serve_forever() loop has ended, so that shutdown() can
        # wait for the loop to finish the request it is in.  It starts unset,
        # as in the stdlib: shutdown() before the loop starts waits for it.
        self._loop_stopped = threading.Event()
        self._stop_requested = False

    def server_activate(self):
        """Start accepting requests (nothing to do here). May be overridden."""

    def serve_forever(self, poll_interval=0.5):
        """Handle requests until shutdown() is called.

        Wakes every poll_interval seconds to check for shutdown and to run
        service_actions().  shutdown() must come from another thread:
        called from here it would wait for itself.
        """
        self._loop_stopped.clear()
        try:
            with _Selector() as selector:
                selector.register(self, selectors.EVENT_READ)
                while not self._stop_requested:
                    ready = selector.select(poll_interval)
                    # Checked again: shutdown() may have come during select().
                    if self._stop_requested:
                        break
                    if ready:
                        self._handle_ready_request()
                    self.service_actions()
        finally:
            self._stop_requested = False
            self._loop_stopped.set()

    def shutdown(self):
        """Ask serve_forever() to stop, and wait until it has.

        Called before any loop has started, it waits for one to start and
        stop.  Never call it from the thread that runs serve_forever(): that
        thread would wait for itself.
        """
        self._stop_requested = True
        self._loop_stopped.wait()

    def service_actions(self):
        """Called once per turn of serve_forever(). May be overridden."""

    def handle_request(self):
        """Wait for one request and handle it, or call handle_timeout().

        The wait is the shorter of self.timeout and the socket's own
        timeout; with neither set it waits forever.
        """
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout

        with _Selector() as selector:
            selector.register(self, selectors.EVENT_READ)
            # select() can return early with nothing ready (a signal, say),
            # so loop until a request is ready or the deadline has passed.
            while True:
                if selector.select(timeout):
                    return self._handle_ready_request()
                if deadline is not None:
                    timeout = deadline - time.monotonic()
                    if timeout < 0:
                        return self.handle_timeout()

    def _handle_ready_request(self):
        """Take the request that is ready and run it through the hooks."""
        try:
            request, client_address = self.get_request()
        except OSError:
            # Another thread or process may have taken the request first,
            # or the peer gave up; either way there is nothing to handle.
            return
        if not self.verify_request(request, client_address):
            # A refused request still holds an open connection.
            self.shutdown_request(request)
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        except BaseException:
            # KeyboardInterrupt and friends end the loop, but not before
            # the connection is released.
            self.shutdown_request(request)
            raise

    def handle_timeout(self):
        """Called when handle_request() times out. May be overridden."""

    def verify_request(self, request, client_address):
        """Return True to handle the request, False to refuse it. May be overridden."""
        return True

    def process_request(self, request, client_address):
        """Handle the request now, then release it. Overridden by the mix-ins."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self):
        """Release the server's resources. May be overridden."""

    def finish_request(self, request, client_address):
        """Create the handler instance; its constructor does all the work."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request):
        """Tell the peer we are done with the request, then close it. May be overridden."""
        self.close_request(request)

    def close_request(self, request):
        """Release our end of the request. May be overridden."""

    def handle_error(self, request, client_address):
        """Report an exception raised while handling a request, and carry on.

        The default prints the client address and the traceback to stderr.
        May be overridden (to log instead, for example).
        """
        rule = "-" * 40
        print(rule, file=sys.stderr)
        print("Exception while handling a request from", client_address,
              file=sys.stderr)
        traceback.print_exc()
        print(rule, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server_close()


class TCPServer(BaseServer):
    """A server on a connected stream socket (TCP by default).

    For the caller:
        TCPServer(server_address, RequestHandlerClass, bind_and_activate=True);
        with bind_and_activate=False, set socket options first, then call
        server_bind() and server_activate() yourself.
        server_address holds the bound address (the real port after port 0).

    Class variables:
        address_family, socket_type: what kind of socket to open.
        request_queue_size: the listen() backlog.
        allow_reuse_address: set SO_REUSEADDR before binding, so that a
            restarted server can bind while old connections sit in TIME_WAIT.
        allow_reuse_port: set SO_REUSEPORT before binding.
    """

    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    request_queue_size = 5
    allow_reuse_address = False
    allow_reuse_port = False

    def __init__(self, server_address, RequestHandlerClass,
                 bind_and_activate=True):
        """Open the socket and, unless told otherwise, bind and listen."""
        super().__init__(server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                # A failed bind (address in use) must not leak the socket.
                self.server_close()
                raise

    def server_bind(self):
        """Apply the reuse options, bind, and record the real address."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self):
        """Listen, with a backlog of request_queue_size."""
        self.socket.listen(self.request_queue_size)

    def server_close(self):
        """Close the listening socket."""
        self.socket.close()

    def fileno(self):
        """The listening socket's descriptor, for the selector."""
        return self.socket.fileno()

    def get_request(self):
        """Accept a connection: return (connection socket, client address)."""
        return self.socket.accept()

    def shutdown_request(self, request):
        """Half-close the connection (the peer sees EOF), then close it."""
        try:
            # Closing alone could discard data the peer has not read yet
            # on some systems; shutting down the sending side first flushes it.
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may already be gone
        self.close_request(request)

    def close_request(self, request):
        """Close the connection socket."""
        request.close()


class UDPServer(TCPServer):
    """A server on a datagram socket: every datagram is one request.

    The request given to the handler is the pair (data, server socket):
    there is no connection, so replies go out through the server's own
    socket, addressed to the client.

    Class variables:
        max_packet_size: bytes read per datagram; the rest of a longer
            datagram is lost.
    """

    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self):
        """Read one datagram: return ((data, server socket), client address)."""
        data, client_address = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_address

    def server_activate(self):
        """Nothing to do: datagram sockets do not listen."""

    def shutdown_request(self, request):
        """Nothing to shut down: there is no connection."""
        self.close_request(request)

    def close_request(self, request):
        """Nothing to close: the socket is the server's own."""


if hasattr(socket, "AF_UNIX"):

    class UnixStreamServer(TCPServer):
        """TCPServer on a Unix-domain stream socket (the address is a path).

        The socket file stays on disk after server_close(): remove it
        yourself, as with the stdlib.
        """

        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        """UDPServer on a Unix-domain datagram socket (the address is a path)."""

        address_family = socket.AF_UNIX
