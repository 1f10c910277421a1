"""The mix-ins: handle each request in a thread of its own, or a process.

A server from ``servers.py`` handles one request at a time: while one client
is being served, the others wait.  A mix-in changes exactly one hook,
``process_request``, so that the request runs somewhere else and the loop is
free to accept the next one at once.  It also extends ``server_close`` so
that closing the server waits for that work to finish (``block_on_close``).

The mix-in must come *first* in the bases:

```python
class ThreadingTCPServer(ThreadingMixIn, TCPServer): ...
```

Python looks methods up along the MRO from left to right, so the mix-in's
``process_request`` is found before ``BaseServer.process_request``.  In the
other order the server's own version wins and every request is handled in
the serving thread, silently: no error, just no concurrency.

What the mix-ins do is the stdlib's, hook for hook; the helpers behind
them (``_HandlerThreads``, ``_exited``) are sockserv's own.

The ready-made combinations are defined at the end of this module.
"""

import os
import socket
import sys
import threading

from .servers import TCPServer, UDPServer

__all__ = ["ThreadingMixIn", "ThreadingTCPServer", "ThreadingUDPServer"]


def _handle_off_the_loop(server, request, client_address):
    """Run the handler in a thread or a child: True if it returned normally.

    Off the loop nobody else is there to catch an exception, so it goes to
    handle_error() here; the caller shuts the request down either way.
    """
    try:
        server.finish_request(request, client_address)
    except Exception:
        server.handle_error(request, client_address)
        return False
    return True


class _HandlerThreads:
    """The handler threads that server_close() must wait for.

    Finished threads are dropped whenever a new one is added, so a server
    that runs for days does not keep a list of every thread it ever ran.
    """

    def __init__(self):
        self._lock = threading.Lock()  # serving thread adds, any thread joins
        self._threads = []

    def add(self, thread):
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def join_all(self):
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()


class ThreadingMixIn:
    """Handle each request in a new thread.

    Class variables:
        daemon_threads: if True, handler threads are daemons: the program
            may exit while they still run, and server_close() does not
            wait for them.
        block_on_close: if True (the default), server_close() waits for
            every non-daemon handler thread to finish.

    May be overridden: process_request_thread() (runs in the new thread).
    """

    daemon_threads = False
    block_on_close = True
    __threads = None  # a _HandlerThreads, created per server on first use

    def process_request_thread(self, request, client_address):
        """The body of a handler thread: handle, report errors, release.

        Does what BaseServer.process_request does, in the new thread, and
        handles exceptions itself (see handle_error()).
        """
        try:
            _handle_off_the_loop(self, request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request, client_address):
        """Start a thread to handle the request, and return at once."""
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address))
        thread.daemon = self.daemon_threads
        # Decided per thread, when it starts: changing block_on_close later
        # does not forget the threads already counted (as in the stdlib).
        if self.block_on_close and not thread.daemon:
            if self.__threads is None:
                self.__threads = _HandlerThreads()
            self.__threads.add(thread)
        thread.start()

    def server_close(self):
        """Close the socket, then wait for the handler threads counted above."""
        super().server_close()
        if self.__threads is not None:
            self.__threads.join_all()


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """TCPServer with a thread per connection."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """UDPServer with a thread per datagram."""


if hasattr(socket, "AF_UNIX"):
    from .servers import UnixDatagramServer, UnixStreamServer

    __all__ += ["ThreadingUnixStreamServer", "ThreadingUnixDatagramServer"]

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        """UnixStreamServer with a thread per connection."""

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        """UnixDatagramServer with a thread per datagram."""


def _exited(pid, wait):
    """True once child ``pid`` has exited and been reaped, or is not ours to wait for."""
    try:
        done, _ = os.waitpid(pid, 0 if wait else os.WNOHANG)
    except ChildProcessError:
        return True  # reaped elsewhere (a SIGCHLD handler, say): forget it
    except OSError:
        return False
    return done == pid


if hasattr(os, "fork"):
    __all__ += ["ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer"]

    class ForkingMixIn:
        """Handle each request in a child process (POSIX only).

        The parent only forks and keeps count; the child handles the
        request and exits, so a crash or a leak in a handler cannot touch
        the server.  Finished children must be waited for ("reaped"), or
        they linger as zombies: the server does it between requests (in
        service_actions and handle_timeout) and in server_close.

        From Python 3.12, os.fork() in a process that has other threads
        warns (DeprecationWarning): the child gets only the forking thread,
        and a lock another thread held stays locked in it forever.

        Class variables:
            max_children: with this many children running, the parent
                waits for one to exit before it forks another.
            active_children: the set of pids still running, or None
                before the first fork.
            block_on_close: if True (the default), server_close() waits
                for every child to exit.
            timeout: handle_request() wakes after this many seconds to
                reap children even when no request comes.
        """

        timeout = 300
        active_children = None
        max_children = 40
        block_on_close = True

        def collect_children(self, *, blocking=False):
            """Reap the children that have exited (with blocking, wait for all).

            At max_children, first wait until some child exits, to make room.
            """
            children = self.active_children
            if children is None:
                return
            while len(children) >= self.max_children and self.__wait_for_any_child():
                pass
            children.difference_update([pid for pid in list(children) if _exited(pid, blocking)])

        def __wait_for_any_child(self):
            """Block until one child exits and forget it; False if waiting cannot help."""
            try:
                # -1: whichever child exits first frees a place.
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                self.active_children.clear()  # no children left at all
                return True
            except OSError:
                return False
            self.active_children.discard(pid)
            return True

        def handle_timeout(self):
            """Reap finished children while no request is coming in."""
            self.collect_children()

        def service_actions(self):
            """Reap finished children once per turn of serve_forever()."""
            self.collect_children()

        def process_request(self, request, client_address):
            """Fork: the child handles the request and exits; the parent returns."""
            pid = os.fork()
            if pid:
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(pid)
                # The child has its own copy of the connection; the parent's
                # copy must go, or the peer would never see the connection end.
                self.close_request(request)
                return
            # In the child.  Whatever happens, leave through os._exit(), not
            # sys.exit(): the child must not unwind into the parent's code
            # (its finally blocks, atexit handlers, buffered files).
            status = 1  # unless the handler returns normally
            try:
                if _handle_off_the_loop(self, request, client_address):
                    status = 0
            finally:
                try:
                    self.shutdown_request(request)
                finally:
                    os._exit(status)

        def server_close(self):
            """Close the socket, then reap children (waiting if block_on_close)."""
            super().server_close()
            self.collect_children(blocking=self.block_on_close)

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        """TCPServer with a child process per connection."""

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        """UDPServer with a child process per datagram."""

    # Python 3.12 added these two; sockserv has them exactly where the stdlib does.
    if hasattr(socket, "AF_UNIX") and sys.version_info >= (3, 12):
        __all__ += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]

        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            """UnixStreamServer with a child process per connection."""

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            """UnixDatagramServer with a child process per datagram."""
