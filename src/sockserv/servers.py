"""The server classes: one listening socket, one loop, one request at a time.

A server owns a socket and a *request handler class*.  Its only job is to
turn "something is ready on my socket" into "a request": an accepted
connection for stream sockets, one datagram for datagram sockets.  Each
request is given to a brand-new handler instance, and what happens in
between is split into small hook methods so that a subclass, or a mix-in
(see ``mixins.py``), can change one step without touching the others:

```text
serve_forever / handle_request
    -> get_request                  accept() or recvfrom()
    -> verify_request               False refuses the request
    -> process_request              a mix-in runs this in a thread or a child
         -> finish_request          builds the handler: setup/handle/finish
         -> shutdown_request        tells the peer we are done
              -> close_request      releases our end
```

The hooks, their order and what each one is given are the stdlib's, on
purpose: they are the contract that programs written for ``socketserver``
rely on.  The loop around them is sockserv's own:

* It waits on a selector rather than blocking in ``accept()``, because a
  blocked ``accept()`` cannot be interrupted from another thread.  Next to
  the listening socket the selector watches one end of a socket pair, and
  ``shutdown()`` writes a byte to the other end: the loop wakes at once.
  (The stdlib's loop notices ``shutdown()`` only at its next
  ``poll_interval``.)  ``poll_interval`` still paces ``service_actions()``:
  it runs once per turn, after every request and after every idle wait.
* When ``accept()`` fails because the process is out of descriptors
  (EMFILE, ENFILE) or memory, the waiting connection stays queued and the
  listener stays readable, so a loop that simply tries again spins at 100%
  CPU (the stdlib's does).  This loop leaves the listener alone for a few
  turns instead (``_ListenerWatch``) and accepts again once it is re-armed.
"""

import contextlib
import errno
import selectors
import socket
import sys
import threading
import time
import traceback

__all__ = ["BaseServer", "TCPServer", "UDPServer"]
if hasattr(socket, "AF_UNIX"):
    __all__ += ["UnixStreamServer", "UnixDatagramServer"]

# poll() has no limit on descriptor numbers, unlike select(), and needs no
# descriptor of its own, unlike epoll; the loop watches two descriptors, so
# nothing fancier pays off.  (The stdlib makes the same choice.)
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)

#: accept() errors that mean "no resources now", not "this request failed".
_OUT_OF_RESOURCES = frozenset(
    getattr(errno, name) for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name))

#: allow_reuse_port exists from Python 3.11; on 3.10 the option is ignored, as there.
_HAS_REUSE_PORT = sys.version_info >= (3, 11)


def _shorter(first, second):
    """The shorter of two timeouts, where None means "no limit"."""
    if first is None:
        return second
    return first if second is None else min(first, second)


def _time_left(deadline):
    """Seconds until ``deadline`` (a time.monotonic() value, never negative), or None."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class _StopRequest:
    """What shutdown() and a running serve_forever() loop tell each other.

    ``requested`` is set by shutdown() and read by the loop at each turn;
    the loop sets ``ended`` when it has left, and clears ``requested`` then.
    While a loop runs, ``wake_up_during()`` gives it a socket pair whose
    reading end sits in the loop's selector: request() writes one byte to
    the other end, and select() returns at once.
    """

    def __init__(self):
        self.requested = False
        self.ended = threading.Event()
        # Guards the wake-up socket, which the loop closes while shutdown()
        # may be writing to it from another thread.  Re-entrant, so that a
        # signal handler calling shutdown() during shutdown() cannot deadlock.
        self._lock = threading.RLock()
        self._wake_up = None

    def request(self):
        with self._lock:
            self.requested = True
            if self._wake_up is not None:
                try:
                    self._wake_up.send(b"\0")
                except OSError:
                    pass  # buffer full (the loop is already awake) or closing

    @contextlib.contextmanager
    def wake_up_during(self, selector):
        """Register a wake-up socket in ``selector`` for the length of the block."""
        try:
            reader, writer = socket.socketpair()
        except OSError:
            # Out of descriptors: the loop still stops, at its next turn.
            yield
            return
        with reader, writer:
            writer.setblocking(False)
            selector.register(reader, selectors.EVENT_READ)
            with self._lock:
                self._wake_up = writer
            try:
                yield
            finally:
                with self._lock:
                    self._wake_up = None


class _ListenerWatch:
    """The listener's place in the loop's selector: watched, or paused for a few turns.

    A pause follows a get_request() that failed for lack of resources.  The
    first failure pauses it for one turn of the loop, each further one
    in a row for twice as many, up to about a second's worth of turns; the
    first request that comes through resets it.  (asyncio's selector event
    loop also stops watching a listener after these four errors, for a
    fixed second: ``asyncio.constants.ACCEPT_RETRY_DELAY``.)  Counting turns rather than seconds keeps
    service_actions() at its pace, one call per turn.
    """

    LONGEST = 1.0  # seconds

    def __init__(self, selector, server, poll_interval):
        self._selector, self._server = selector, server
        self._poll_interval = poll_interval
        self.longest_turns = max(1, round(self.LONGEST / poll_interval)) if poll_interval else 1
        self.turns_left = 0
        self._next_turns = 1
        selector.register(server, selectors.EVENT_READ)

    @property
    def timeout(self):
        """How long this turn may wait: poll_interval, but never forever while paused."""
        if self.turns_left and self._poll_interval is None:
            return self.LONGEST
        return self._poll_interval

    def after_request(self, out_of_resources):
        if not out_of_resources:
            self._next_turns = 1
            return
        self._selector.unregister(self._server)
        self.turns_left = self._next_turns + 1  # the turn that failed is not one of them
        self._next_turns = min(2 * self._next_turns, self.longest_turns)

    def end_of_turn(self):
        if self.turns_left:
            self.turns_left -= 1
            if not self.turns_left:
                self._selector.register(self._server, selectors.EVENT_READ)


class BaseServer:
    """The request loop, independent of any kind of socket.

    Methods for the caller:
        __init__(server_address, RequestHandlerClass);
        serve_forever(poll_interval=0.5) and, from another thread,
        shutdown(); or handle_request() for one request at a time;
        server_close(), also called by ``with`` on exit.

    May be overridden:
        server_bind(), server_activate(), get_request(), verify_request(),
        process_request(), shutdown_request(), close_request(),
        handle_error(), handle_timeout(), service_actions(), server_close().

    For subclasses:
        finish_request() builds the handler; fileno() must return the
        descriptor the loop waits on (TCPServer's is its socket's).

    Class variables:
        timeout: seconds handle_request() waits, or None to wait forever.
            serve_forever() ignores it.

    Instance variables: server_address, RequestHandlerClass (and on the
    socket servers, socket).  Private state is name-mangled
    (``_BaseServer__...``), so that a subclass or a mix-in may use any
    single-underscore name it likes.
    """

    timeout = None

    def __init__(self, server_address, RequestHandlerClass):
        """Remember the address and handler class. May be extended, do not override."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        # As in the stdlib, ``ended`` starts unset: shutdown() before any
        # loop has run waits for one to start, and stops it at once.
        self.__stop = _StopRequest()

    def server_activate(self):
        """Called by the constructor to start accepting requests. May be overridden."""

    def serve_forever(self, poll_interval=0.5):
        """Handle requests one at a time until shutdown() is called.

        Waits at most poll_interval seconds per turn, and calls
        service_actions() after every turn; shutdown() wakes the loop at
        once.  Ignores self.timeout.  shutdown() must come from another
        thread: called from this one it would wait for itself.
        """
        stop = self.__stop
        stop.ended.clear()
        try:
            with _Selector() as selector, stop.wake_up_during(selector):
                listener = _ListenerWatch(selector, self, poll_interval)
                while not stop.requested:
                    ready = self.__wait(selector, listener.timeout)
                    # shutdown() during the wait: leave without taking a request.
                    if stop.requested:
                        break
                    if ready:
                        listener.after_request(self.__handle_ready_request())
                    self.service_actions()
                    listener.end_of_turn()
        finally:
            stop.requested = False
            stop.ended.set()

    def __wait(self, selector, timeout):
        """True if a request is ready on the listener within ``timeout``."""
        if not selector.get_map():
            # Paused, and no wake-up socket: nothing to watch (Windows' select() refuses that).
            time.sleep(timeout)
            return False
        return any(key.fileobj is self for key, _ in selector.select(timeout))

    def shutdown(self):
        """Stop the serve_forever() loop, and wait until it has stopped.

        The loop finishes the request it is in first.  Call it while
        serve_forever() runs in another thread; called before any loop has
        started it waits for one to start (and stops it at once), and from
        the loop's own thread it waits forever.
        """
        self.__stop.request()
        self.__stop.ended.wait()

    def service_actions(self):
        """Called by serve_forever() once per turn. May be overridden.

        A subclass or mix-in puts periodic work here (ForkingMixIn reaps
        its children); it runs in the loop's thread, so keep it short.
        """

    def handle_request(self):
        """Wait for one request and handle it, or call handle_timeout().

        Waits for the shorter of self.timeout and the socket's own timeout;
        with neither set, forever.  Returns what handle_timeout() returns
        when it times out, None otherwise.
        """
        timeout = _shorter(self.socket.gettimeout(), self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with _Selector() as selector:
            selector.register(self, selectors.EVENT_READ)
            # select() may return early with nothing ready (a signal, say):
            # wait again for what is left until the deadline.
            while not selector.select(_time_left(deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    return self.handle_timeout()
        self.__handle_ready_request()
        return None

    def __handle_ready_request(self):
        """Take the request that is ready and run it through the hooks.

        Returns True when get_request() failed for lack of resources.  The
        order of the hooks, and which errors go where, are the stdlib's.
        """
        try:
            request, client_address = self.get_request()
        except OSError as error:
            # Another thread or process may have taken the request first, or
            # the peer gave up: nothing to handle.  Or we are out of descriptors.
            return error.errno in _OUT_OF_RESOURCES
        if not self.verify_request(request, client_address):
            self.shutdown_request(request)  # a refused connection is still open
            return False
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        except BaseException:
            # KeyboardInterrupt and SystemExit end the loop, but not before
            # the connection is released; handle_error() is not for them.
            self.shutdown_request(request)
            raise
        return False

    def handle_timeout(self):
        """Called when handle_request() waits in vain. May be overridden (ForkingMixIn does)."""

    def verify_request(self, request, client_address):
        """Return True to handle the request, False to refuse it. May be overridden."""
        return True

    def process_request(self, request, client_address):
        """Handle the request now, then release it. Overridden by the mix-ins."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self):
        """Release the server's resources. May be overridden (extend it: call super())."""

    def finish_request(self, request, client_address):
        """Create the handler instance; its constructor does all the work."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request):
        """End one request: tell the peer, then close_request(). May be overridden."""
        self.close_request(request)

    def close_request(self, request):
        """Release our end of one request. May be overridden."""

    def handle_error(self, request, client_address):
        """Report the exception being handled, and carry on serving.

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

    Methods for the caller:
        TCPServer(server_address, RequestHandlerClass, bind_and_activate=True);
        with bind_and_activate=False, set socket options first, then call
        server_bind() and server_activate() yourself.
        server_address holds the bound address (the real port after port 0).

    Class variables:
        address_family, socket_type: what kind of socket to open.
        request_queue_size: the listen() backlog.
        allow_reuse_address: set SO_REUSEADDR before binding, so that a
            restarted server can bind while old connections sit in TIME_WAIT.
        allow_reuse_port: set SO_REUSEPORT before binding (Python 3.11+,
            like the stdlib; on 3.10 there is no such attribute).
    """

    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    request_queue_size = 5
    allow_reuse_address = False
    if _HAS_REUSE_PORT:
        allow_reuse_port = False

    def __init__(self, server_address, RequestHandlerClass,
                 bind_and_activate=True):
        """Open the socket and, unless told otherwise, bind and listen.

        May be extended, do not override.
        """
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
        """Called by the constructor: set the reuse options, bind, read the address back.

        May be overridden.
        """
        for option in self.__reuse_options():
            self.socket.setsockopt(socket.SOL_SOCKET, option, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def __reuse_options(self):
        """The SO_REUSE* options this class asks for and the platform has."""
        wanted = [("SO_REUSEADDR", self.allow_reuse_address)]
        if _HAS_REUSE_PORT:
            wanted.append(("SO_REUSEPORT", self.allow_reuse_port))
        return [getattr(socket, name) for name, on in wanted if on and hasattr(socket, name)]

    def server_activate(self):
        """Called by the constructor: listen, with a backlog of request_queue_size.

        May be overridden.
        """
        self.socket.listen(self.request_queue_size)

    def server_close(self):
        """Close the listening socket. May be overridden (extend it: call super())."""
        self.socket.close()

    def fileno(self):
        """The listening socket's descriptor: what the loop's selector waits on."""
        return self.socket.fileno()

    def get_request(self):
        """Accept a connection: return (connection socket, client address). May be overridden."""
        return self.socket.accept()

    def shutdown_request(self, request):
        """Half-close the connection (the peer sees EOF), then close_request(). May be overridden."""
        try:
            # close() alone may send no EOF (FIN): every makefile() object
            # holds a reference to the socket, and the descriptor closes only
            # when the last one goes (a handler may keep rfile or wfile open
            # past finish()), nor while a forked child holds a copy.
            # shutdown() ends our direction of the stream whatever else is open.
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may already be gone
        self.close_request(request)

    def close_request(self, request):
        """Close the connection socket. May be overridden."""
        request.close()


class UDPServer(TCPServer):
    """A server on a datagram socket: every datagram is one request.

    The request given to the handler is the pair (data, server socket):
    there is no connection, so replies go out through the server's own
    socket, addressed to the client.  UDPServer reuses TCPServer's socket
    set-up, as in the stdlib, but not its reuse options, which are off
    here whatever TCPServer says.

    Class variables:
        max_packet_size: bytes read per datagram; the rest of a longer
            datagram is lost.
    """

    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192
    allow_reuse_address = False
    if _HAS_REUSE_PORT:
        allow_reuse_port = False

    def get_request(self):
        """Read one datagram: return ((data, server socket), client address)."""
        data, client_address = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_address

    def server_activate(self):
        """Nothing to do: datagram sockets do not listen."""

    def shutdown_request(self, request):
        """Nothing to shut down: there is no connection; calls close_request()."""
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
