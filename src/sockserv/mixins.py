"""The mix-ins: handle each request in a thread of its own, or a process.

A server from ``servers.py`` handles one request at a time: while one client
is being served, the others wait.  A mix-in changes exactly one hook,
``process_request``, so that the request runs somewhere else and the loop is
free to accept the next one at once.  It also extends ``server_close`` so
that closing the server waits for that work to finish (``block_on_close``).

The mix-in must come *first* in the bases::

    class ThreadingTCPServer(ThreadingMixIn, TCPServer): ...

Python looks methods up along the MRO from left to right, so the mix-in's
``process_request`` is found before ``BaseServer.process_request``.  In the
other order the server's own version wins and every request is handled in
the serving thread, silently: no error, just no concurrency.

The ready-made combinations are defined at the end of this module.
"""

import os
import socket
import threading

from .servers import TCPServer, UDPServer

__all__ = ["ThreadingMixIn", "ThreadingTCPServer", "ThreadingUDPServer"]


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
    _handler_threads = None  # created on first use, per server instance

    def process_request_thread(self, request, client_address):
        """The body of a handler thread: handle, report errors, release."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request, client_address):
        """Start a thread to handle the request, and return at once."""
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address))
        thread.daemon = self.daemon_threads
        if self.block_on_close and not thread.daemon:
            if self._handler_threads is None:
                self._handler_threads = _HandlerThreads()
            self._handler_threads.add(thread)
        thread.start()

    def server_close(self):
        """Close the socket, then wait for handler threads (if block_on_close)."""
        super().server_close()
        if self._handler_threads is not None:
            self._handler_threads.join_all()


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


if hasattr(os, "fork"):
    __all__ += ["ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer"]

    class ForkingMixIn:
        """Handle each request in a child process (POSIX only).

        The parent only forks and keeps count; the child handles the
        request and exits, so a crash or a leak in a handler cannot touch
        the server.  Finished children must be waited for ("reaped"), or
        they linger as zombies: the server does it between requests (in
        service_actions and handle_timeout) and in server_close.

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
            """Reap children that have exited; first wait while at max_children."""
            if self.active_children is None:
                return
            while len(self.active_children) >= self.max_children:
                try:
                    pid, _ = os.waitpid(-1, 0)
                    self.active_children.discard(pid)
                except ChildProcessError:
                    # Someone else reaped them all (a SIGCHLD handler, say).
                    self.active_children.clear()
                except OSError:
                    break
            flags = 0 if blocking else os.WNOHANG
            for pid in list(self.active_children):
                try:
                    done, _ = os.waitpid(pid, flags)
                except ChildProcessError:
                    done = pid  # already reaped elsewhere: forget it
                except OSError:
                    continue
                if done:
                    self.active_children.discard(pid)

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
            exit_status = 1
            try:
                self.finish_request(request, client_address)
                exit_status = 0
            except Exception:
                self.handle_error(request, client_address)
            finally:
                try:
                    self.shutdown_request(request)
                finally:
                    # _exit, not exit: the child must not run the parent's
                    # cleanup (atexit, finally blocks up the stack, buffers).
                    os._exit(exit_status)

        def server_close(self):
            """Close the socket, then reap children (waiting if block_on_close)."""
            super().server_close()
            self.collect_children(blocking=self.block_on_close)

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        """TCPServer with a child process per connection."""

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        """UDPServer with a child process per datagram."""
