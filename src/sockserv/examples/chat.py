"""A chat server for a classroom, built on the course's own server classes.

`make_server(address, impl=socketserver)` returns a listening chat server; the protocol it
speaks is described, line by line, in docs/chat-protocol.md.  The same code runs on the stdlib
(`impl=socketserver`) and on the course's re-implementation (`impl=sockserv`): the two classes
below are mix-ins, combined with impl's ThreadingTCPServer and StreamRequestHandler by
`chat_classes(impl)`, the way socketserver itself builds ThreadingTCPServer out of
ThreadingMixIn and TCPServer.

    ChatServerMixIn   impl.ThreadingTCPServer
                \\       /
               ChatServer  ---- makes one per connection ---->  ChatRequestHandler
                                                                 /               \\
                                             ChatRequestHandlerMixIn   impl.StreamRequestHandler

Where the pieces live (each module has one job):

    chat_protocol   what a client line means; every line the server may send; the limits
    chat_telnet     telnet commands removed from the input, offers refused, Ctrl-C seen
    chat_framing    the byte stream cut into lines of at most max_line bytes
    chat_clean      control characters removed from what a client says
    chat_bucket     the flood limit: a token bucket per client
    chat_input      those steps chained for one connection (no I/O: shareable)
    chat_registry   the clients by name, one lock, broadcasts in one global order, max_clients
    chat_outbox     a bounded queue and a writer thread per client
    chat_console    the teacher's console (who, say, kick, quit, help)
    chat (this)     the handler (read bytes, obey what they ask) and the server (start, stop)

What makes it classroom-ready, and where each guarantee comes from:

- A client that stops reading stalls only its own writer thread; past `max_pending` queued
  bytes it is disconnected (chat_outbox).  Broadcasts hold the registry lock but never block.
- The handler reads with recv(), not rfile.readline(): telnet commands must be removed before
  the stream is cut into lines (an option byte may be 0x0A).  chat_input does both and holds
  at most max_line bytes of an unfinished line; a longer line gets "! line too long" and a
  disconnect.
- Nothing a client sends reaches another client's terminal as a control character
  (chat_clean), telnet negotiation never reaches anyone and is refused (chat_telnet), and a
  client over its flood limit has its lines dropped (chat_bucket).
- The idle timeout counts from the last complete line, not the last byte: before each recv()
  the handler waits (wait_readable) at most until that line's deadline, so a client trickling
  bytes without a newline is timed out like a silent one.  The socket's own timeout, also
  idle_timeout, bounds the writer's sendall() to a client that reads nothing.
- At most max_clients are registered; one more gets "! server full" and is closed, and
  nobody else sees anything (chat_registry).  The refused client still has a handler thread
  for the moment it takes to send that line and close: the limit bounds the chat, not the
  accept loop.
- Every handler deregisters in finish(), which runs however handle() ended.
- stop() ends the serve loop, queues "* server shutting down" to everyone, gives writers a
  moment to deliver it, then shuts every connection down (shutdown(), unlike close(), wakes a
  thread blocked in recv() or sendall() on the socket) and waits, with deadlines, for the
  handler threads to finish.  Threads are daemon threads and server_close() does not join
  them (block_on_close = False): stop() does its own bounded waiting instead, so that neither
  a stuck client nor a bug can stop the process from exiting.

Logging goes to the "sockserv.chat" logger, one line per event: joins, leaves (with the
reason), renames at INFO; unexpected errors at ERROR.
"""

import functools
import logging
import math
import os
import select
import socket
import sys
import threading
import time

from .chat_input import ChatInput
from .chat_outbox import Outbox
from .chat_protocol import LIMITS, check_limits, render
from .chat_registry import Full, Registry

__all__ = ["make_server", "chat_classes", "ChatServerMixIn", "ChatRequestHandlerMixIn"]

log = logging.getLogger("sockserv.chat")

# The replies that need no state: command kind -> LINES kind sent to the sender.
_REPLIES = {"ping": "pong", "help": "help", "unknown": "unknown"}


def make_server(address, *, impl, max_line=LIMITS.max_line, idle_timeout=LIMITS.idle_timeout,
                max_clients=LIMITS.max_clients, rate=LIMITS.rate, burst=LIMITS.burst,
                clock=time.monotonic):
    """Return a bound, listening chat server built from impl's classes.

    impl is the module that provides ThreadingTCPServer and StreamRequestHandler: the stdlib's
    socketserver, or sockserv.  The limits are those of chat_protocol.Limits; clock is what
    the flood limit's buckets read (tests pass a clock they move by hand).
    """
    server_class, handler_class = chat_classes(impl)
    return server_class(address, handler_class, max_line=max_line, idle_timeout=idle_timeout,
                        max_clients=max_clients, rate=rate, burst=burst, clock=clock)


@functools.cache
def chat_classes(impl):
    """Return (ChatServer, ChatRequestHandler) built on impl's classes; one pair per impl."""
    handler_class = type("ChatRequestHandler",
                         (ChatRequestHandlerMixIn, impl.StreamRequestHandler),
                         {"__module__": __name__, "__doc__": ChatRequestHandlerMixIn.__doc__})
    server_class = type("ChatServer",
                        (ChatServerMixIn, impl.ThreadingTCPServer),
                        {"__module__": __name__, "__doc__": ChatServerMixIn.__doc__})
    return server_class, handler_class


def wait_readable(sock, timeout):
    """Wait up to timeout seconds for sock to have input (or EOF, or an error); True if so.

    Not sock.settimeout(): the socket's timeout is shared with the writer thread's sendall().
    poll() where there is one (select() cannot take descriptors above 1023 on Linux).
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(0, math.ceil(timeout * 1000))))
    readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
    return bool(readable)


class ChatRequestHandlerMixIn:
    """Serves one chat client: reads its lines, obeys them, and leaves cleanly.

    Combine with a StreamRequestHandler (the mix-in first).  The handler registers its client
    in handle() and deregisters it in finish(), which runs however handle() ended.  Everything
    the client is sent goes through its Outbox, written by the outbox's own thread; the
    handler's thread only ever reads.

    Attributes: nick (the client's current name, None until it has joined), outbox, peer
    ("HOST:PORT"), reason (why the client left, for the log).
    """

    # Chat lines are small and wanted at once: do not let Nagle's algorithm hold them back.
    disable_nagle_algorithm = True
    #: The most bytes one recv() takes.
    recv_size = 4096

    def setup(self):
        """Set the socket timeout, name the threads, make the outbox.  May be extended."""
        # StreamRequestHandler.setup() gives the socket this timeout.  It bounds the writer's
        # sendall() to a client that takes nothing (the reader waits with wait_readable(),
        # whose deadline is the idle rule's).
        self.timeout = self.server.idle_timeout
        super().setup()
        host, port = self.client_address[:2]
        self.peer = f"{host}:{port}"
        threading.current_thread().name = f"chat-reader {self.peer}"
        self.outbox = Outbox(self.connection, self.server.max_pending,
                             thread_name=f"chat-writer {self.peer}")
        self.nick = None
        self.reason = "never joined"

    def handle(self):
        """Join the chat, then serve the client's lines until it leaves."""
        self.outbox.start()
        try:
            self.nick = self.server.registry.join(self.outbox)
        except Full:
            self.outbox.put(render("full"))
            self.reason = "server full"
            log.info("refused %s: server full", self.peer)
            return
        if self.nick is None:
            # Accepted just as the server is stopping: the same last line as everyone.
            self.outbox.put(render("shutdown"))
            self.reason = "server shutting down"
            return
        log.info("%s joined from %s", self.nick, self.peer)
        self.reason = self.serve_lines()

    def serve_lines(self):
        """Read and obey lines until the client leaves; return the reason it left."""
        server = self.server
        incoming = ChatInput(server.max_line, server.rate, server.burst, server.clock)
        # Idle means no complete line: the deadline moves only when a whole line arrives.
        deadline = time.monotonic() + server.idle_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.tell("idle")
                return "idle timeout"
            try:
                if not wait_readable(self.connection, left):
                    continue    # the loop's first test decides
                data = self.connection.recv(self.recv_size)
            except TimeoutError:
                continue
            except OSError as exc:      # reset by the client, or shut down by stop() or kick
                return f"connection error: {exc}"
            if not data:
                # End of stream; bytes after the last newline are not a line: dropped.
                return "disconnected"
            actions = incoming.feed(data)
            if actions.saw_line:
                deadline = time.monotonic() + server.idle_timeout
            reason = self.carry_out(actions)
            if reason is not None:
                return reason

    def carry_out(self, actions):
        """Do what one ChatInput.feed() asks; return why the client must leave, or None.

        Shared with the asyncio server (aio_chat), which reads differently but obeys alike.
        """
        if actions.replies:
            self.send(actions.replies)
        for command in actions.commands:
            if not self.obey(command):
                return "quit"
        if actions.slow_down:
            self.tell("slow_down")
        if actions.end == "too_long":
            self.tell("too_long")
            return "line too long"
        if actions.end == "interrupt":
            return "interrupted (telnet Ctrl-C)"
        return None

    def obey(self, command):
        """Carry out one parsed client line; return False if the client asked to leave."""
        registry = self.server.registry
        kind = command.kind
        if kind == "say":
            registry.say(self.nick, command.arg)
        elif kind == "nick":
            error = registry.rename(self.nick, command.arg)
            if error == "gone":
                return False
            if error:
                self.tell(error)
            else:
                log.info("%s is now %s", self.nick, command.arg)
                self.nick = command.arg
        elif kind == "who":
            self.tell("users", NAMES=", ".join(registry.names()))
        elif kind in _REPLIES:
            self.tell(_REPLIES[kind])
        elif kind == "quit":
            return False
        return True     # "nothing" never gets here: an empty line gets no answer

    def tell(self, kind, **fields):
        """Send one server line to this client only."""
        self.send(render(kind, **fields))

    def send(self, data):
        """Queue bytes for this client only; give up on it if its outbox overflows."""
        if not self.outbox.put(data):
            self.outbox.kick()

    def finish(self):
        """Deregister, let the writer deliver the last lines, then close.  May be extended."""
        if self.nick is not None and not self.server.registry.leave(self.nick):
            self.reason = "removed by the teacher"
            log.info("%s left (%s)", self.nick, self.reason)
        elif self.nick is not None:
            if self.server.registry.closed:
                self.reason = "server shutting down"
            elif self.outbox.overflowed:
                self.reason = "stopped reading (too much output pending)"
            log.info("%s left (%s)", self.nick, self.reason)
        self.outbox.close()
        if not self.outbox.wait(self.server.flush_timeout):
            self.outbox.kick()      # it is not reading: give up on the last lines
            self.outbox.wait(self.server.flush_timeout)
        self.outbox.release()
        super().finish()


class ChatServerMixIn:
    """A threading TCP server that runs a chat, and can be stopped from any thread.

    Combine with a ThreadingTCPServer (the mix-in first), or use make_server().

    Methods for the caller:

    - serve_forever(poll_interval), shutdown(), server_close(): as usual.
    - stop(): from any thread but the one running serve_forever(): ends the serve loop, tells
      every client "* server shutting down", closes every connection, waits (with deadlines)
      for the handler and writer threads, and calls server_close().  Returns within about
      two seconds, however the clients behave.  Calling it again does nothing.  Use it rather
      than shutdown() and server_close(): those two leave connected clients connected (their
      threads are daemon threads, and server_close() does not wait for them).

    Methods that may be overridden: handle_error() (logs to "sockserv.chat").

    Class variables: max_pending (per-client bytes of queued output before the client is
    disconnected), flush_timeout (how long a leaving client's writer may take to deliver its
    last lines), stop_grace (how long stop() waits for each of its two stages), linger_timeout
    (how long a closing connection keeps reading, see shutdown_request), and the usual
    request_queue_size, daemon_threads, block_on_close, allow_reuse_address.

    Instance variables: max_line, idle_timeout, rate, burst, clock (as for make_server),
    registry (whose max_clients is the --max-clients limit).
    """

    # 30 students pressing Enter in the same second: the listen backlog must hold them all.
    request_queue_size = 128
    # The teacher restarts the server on the same port while old connections are in TIME_WAIT:
    # SO_REUSEADDR allows that on POSIX systems.  Not on Windows, where it means something
    # else (a second server could bind the same port and take connections away silently);
    # the echo server decides the same way.
    allow_reuse_address = os.name == "posix"
    # stop() does its own bounded waiting; see the module docstring.
    daemon_threads = True
    block_on_close = False

    max_pending = 1 << 20
    flush_timeout = 1.0
    stop_grace = 0.75
    linger_timeout = 0.5

    def __init__(self, server_address, RequestHandlerClass, bind_and_activate=True, *,
                 max_line=LIMITS.max_line, idle_timeout=LIMITS.idle_timeout,
                 max_clients=LIMITS.max_clients, rate=LIMITS.rate, burst=LIMITS.burst,
                 clock=time.monotonic):
        check_limits(max_line, idle_timeout, max_clients, rate, burst)
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.registry = Registry(max_clients)
        # The chat's own state is prefixed, so that it can never collide with the private
        # attributes of the server classes it is combined with.
        self._chat_connections = set()  # sockets whose handler thread has not finished
        self._chat_connections_changed = threading.Condition()
        self._chat_stop_lock = threading.Lock()
        self._chat_stopped = False
        self._chat_serving = False
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def serve_forever(self, poll_interval=0.5):
        """Serve until shutdown() or stop(); returns at once if already stopped."""
        with self._chat_stop_lock:
            if self._chat_stopped:
                return
            self._chat_serving = True
        try:
            super().serve_forever(poll_interval)
        finally:
            self._chat_serving = False

    def process_request(self, request, client_address):
        """Record the connection, then start its thread as usual."""
        with self._chat_connections_changed:
            self._chat_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        """Close a finished connection without losing the last lines sent to it.

        Closing a socket that still has unread input makes the kernel send a reset, and on
        some systems (Windows, for one) a reset makes the client discard lines it has not
        read yet: "! line too long" would be lost exactly when the client is still busy
        sending its long line.  So first
        send our end-of-stream and read (and discard) what the client still sends, for at
        most linger_timeout seconds.
        """
        try:
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.linger_timeout
            while (left := deadline - time.monotonic()) > 0:
                request.settimeout(left)
                if not request.recv(65536):
                    break
        except OSError:
            pass    # reset, timed out, or already shut down by stop(): close it anyway
        # Under the lock, so that stop() never calls shutdown() on a descriptor that has
        # been closed (and perhaps reused by a new socket) in the meantime.
        with self._chat_connections_changed:
            super().shutdown_request(request)
            self._chat_connections.discard(request)
            self._chat_connections_changed.notify_all()

    def handle_error(self, request, client_address):
        """Log an unexpected exception from a handler as one line at ERROR."""
        host, port = client_address[:2]
        exc = sys.exc_info()[1]
        log.error("error serving %s:%s: %r", host, port, exc)
        log.debug("the traceback of that error:", exc_info=True)

    def stop(self):
        """Stop serving, tell every client, close every connection; idempotent."""
        with self._chat_stop_lock:
            if self._chat_stopped:
                return
            self._chat_stopped = True
            if self._chat_serving:
                self.shutdown()     # no new connections from here on
            outboxes = self.registry.close(render("shutdown"))
            log.info("stopping: %d client(s) connected", len(outboxes))
            # Stage 1: writers deliver the notice and end; the slow ones miss their chance.
            deadline = time.monotonic() + self.stop_grace
            for box in outboxes:
                box.wait(max(0.0, deadline - time.monotonic()))
            # Stage 2: wake every handler out of recv() and every writer out of
            # sendall(), then wait for the handler threads to finish.
            with self._chat_connections_changed:
                for request in self._chat_connections:
                    try:
                        request.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                if not self._chat_connections_changed.wait_for(lambda: not self._chat_connections,
                                                          timeout=self.stop_grace):
                    log.error("stop: %d connection(s) did not finish in time",
                              len(self._chat_connections))
            self.server_close()
