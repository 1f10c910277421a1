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

    chat_protocol   what a client line means; the table of every line the server may send
    chat_registry   the clients by name, one lock, broadcasts in one global order
    chat_outbox     a bounded queue and a writer thread per client
    chat (this)     the handler (read lines, obey them) and the server (start, stop)

What makes it classroom-ready, and where each guarantee comes from:

- A client that stops reading stalls only its own writer thread; past `max_pending` queued
  bytes it is disconnected (chat_outbox).  Broadcasts hold the registry lock but never block.
- Lines are read with rfile.readline(max_line + 1): however much a client sends, the server
  holds at most one line of it.  A longer line gets "! line too long" and a disconnect.
- The idle timeout is the socket timeout that StreamRequestHandler sets from its `timeout`
  attribute; the handler sets that attribute from the server's idle_timeout.
- Every handler deregisters in finish(), which runs however handle() ended.
- stop() ends the serve loop, queues "* server shutting down" to everyone, gives writers a
  moment to deliver it, then shuts every connection down (shutdown(), unlike close(), wakes a
  thread blocked in readline() or sendall() on the socket) and waits, with deadlines, for the
  handler threads to finish.  Threads are daemon threads and server_close() does not join
  them (block_on_close = False): stop() does its own bounded waiting instead, so that neither
  a stuck client nor a bug can stop the process from exiting.

Logging goes to the "sockserv.chat" logger, one line per event: joins, leaves (with the
reason), renames at INFO; unexpected errors at ERROR.
"""

import functools
import logging
import socket
import sys
import threading
import time

from .chat_outbox import Outbox
from .chat_protocol import decode_line, parse, render
from .chat_registry import Registry

__all__ = ["make_server", "chat_classes", "ChatServerMixIn", "ChatRequestHandlerMixIn"]

log = logging.getLogger("sockserv.chat")

# The replies that need no state: command kind -> LINES kind sent to the sender.
_REPLIES = {"ping": "pong", "help": "help", "unknown": "unknown"}


def make_server(address, *, impl, max_line=4096, idle_timeout=300.0):
    """Return a bound, listening chat server built from impl's classes.

    impl is the module that provides ThreadingTCPServer and StreamRequestHandler: the stdlib's
    socketserver, or sockserv.
    """
    server_class, handler_class = chat_classes(impl)
    return server_class(address, handler_class, max_line=max_line, idle_timeout=idle_timeout)


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

    def setup(self):
        """Apply the idle timeout and name the threads.  May be extended."""
        # StreamRequestHandler.setup() gives the socket this timeout: a readline() that
        # waits longer than the idle timeout raises TimeoutError.
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
        self.nick = self.server.registry.join(self.outbox)
        if self.nick is None:
            # Accepted just as the server is stopping: the same last line as everyone.
            self.outbox.put(render("shutdown"))
            self.reason = "server shutting down"
            return
        log.info("%s joined from %s", self.nick, self.peer)
        self.reason = self.serve_lines()

    def serve_lines(self):
        """Read and obey lines until the client leaves; return the reason it left."""
        limit = self.server.max_line
        while True:
            try:
                # At most limit + 1 bytes: enough to tell "a line of limit bytes and its
                # newline" from "too long", and never more than that in memory.
                raw = self.rfile.readline(limit + 1)
            except TimeoutError:
                self.tell("idle")
                return "idle timeout"
            except OSError as exc:      # reset by the client, or shut down by stop()
                return f"connection error: {exc}"
            if not raw.endswith(b"\n"):
                if len(raw) > limit:
                    self.tell("too_long")
                    return "line too long"
                # End of stream; bytes after the last newline are not a line: dropped.
                return "disconnected"
            if not self.obey(parse(decode_line(raw))):
                return "quit"

    def obey(self, command):
        """Carry out one parsed client line; return False if the client asked to leave."""
        registry = self.server.registry
        kind = command.kind
        if kind == "say":
            registry.say(self.nick, command.arg)
        elif kind == "nick":
            error = registry.rename(self.nick, command.arg)
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
        return True     # "nothing": an empty line gets no answer

    def tell(self, kind, **fields):
        """Send one server line to this client only."""
        if not self.outbox.put(render(kind, **fields)):
            self.outbox.kick()

    def finish(self):
        """Deregister, let the writer deliver the last lines, then close.  May be extended."""
        if self.nick is not None and self.server.registry.leave(self.nick):
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

    Instance variables: max_line, idle_timeout, registry.
    """

    # 30 students pressing Enter in the same second: the listen backlog must hold them all.
    request_queue_size = 128
    # The teacher restarts the server on the same port while old connections are in TIME_WAIT.
    allow_reuse_address = True
    # stop() does its own bounded waiting; see the module docstring.
    daemon_threads = True
    block_on_close = False

    max_pending = 1 << 20
    flush_timeout = 1.0
    stop_grace = 0.75
    linger_timeout = 0.5

    def __init__(self, server_address, RequestHandlerClass, bind_and_activate=True, *,
                 max_line=4096, idle_timeout=300.0):
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.registry = Registry()
        self._connections = set()       # sockets whose handler thread has not finished
        self._connections_changed = threading.Condition()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._serving = False
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def serve_forever(self, poll_interval=0.5):
        """Serve until shutdown() or stop(); returns at once if already stopped."""
        with self._stop_lock:
            if self._stopped:
                return
            self._serving = True
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving = False

    def process_request(self, request, client_address):
        """Record the connection, then start its thread as usual."""
        with self._connections_changed:
            self._connections.add(request)
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
        with self._connections_changed:
            super().shutdown_request(request)
            self._connections.discard(request)
            self._connections_changed.notify_all()

    def handle_error(self, request, client_address):
        """Log an unexpected exception from a handler as one line at ERROR."""
        host, port = client_address[:2]
        exc = sys.exc_info()[1]
        log.error("error serving %s:%s: %r", host, port, exc)
        log.debug("the traceback of that error:", exc_info=True)

    def stop(self):
        """Stop serving, tell every client, close every connection; idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            if self._serving:
                self.shutdown()     # no new connections from here on
            outboxes = self.registry.close(render("shutdown"))
            log.info("stopping: %d client(s) connected", len(outboxes))
            # Stage 1: writers deliver the notice and end; the slow ones miss their chance.
            deadline = time.monotonic() + self.stop_grace
            for box in outboxes:
                box.wait(max(0.0, deadline - time.monotonic()))
            # Stage 2: wake every handler out of readline() and every writer out of
            # sendall(), then wait for the handler threads to finish.
            with self._connections_changed:
                for request in self._connections:
                    try:
                        request.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                if not self._connections_changed.wait_for(lambda: not self._connections,
                                                          timeout=self.stop_grace):
                    log.error("stop: %d connection(s) did not finish in time",
                              len(self._connections))
            self.server_close()
