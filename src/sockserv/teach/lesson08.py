"""Checks for lesson 08's exercises: datagrams and Unix sockets.

Each check runs the learner's answer against real sockets (127.0.0.1, port
0, or Unix sockets in a folder made with ``tempfile.mkdtemp()`` and removed
afterwards), then prints one "Check passed" line or raises
``ExerciseFailed`` with one sentence.

* ``check_whole_datagram_server``: a UDPServer subclass whose handlers see
  every datagram whole, up to the largest UDP payload over IPv4 (65,507
  bytes).  The check serves its own handler, which replies with the length
  it was given, and sends datagrams of 0, 1, 8,192, 8,193 and 65,507 bytes:
  the default ``max_packet_size`` (8,192) cuts the fourth, a "big enough"
  guess such as 65,000 the last.
* ``check_remove_stale_socket``: a function that removes a socket file left
  behind by a server that is gone, and nothing else.  It is tried on a
  regular file, a folder, a socket a live server listens on, a stale
  socket and a path where nothing is, each in a fresh folder.
* ``check_unix_datagram_client``: a function ``ask(server_path, data)``
  that sends one datagram to a Unix datagram server and returns the reply.
  It must bind an address of its own (or the server cannot answer), remove
  its socket file afterwards, and work for two clients at once (the check's
  server holds the first reply until the second request has come).

A wrong answer fails fast, never hangs the notebook and leaves nothing
behind: servers, clients and bounded runs come from ``sockserv.teach.harness``.
"""

import contextlib
import errno
import os
import shutil
import socket
import socketserver
import stat
import tempfile
import threading
import time

import sockserv

from .checks import ExerciseFailed, check, describe_error, passed, preview, require_filled_in
from .harness import (CLIENT_TIMEOUT, LOCALHOST, STOP_TIMEOUT, TimedOut, recording_errors,
                      run_bounded, serving, talk)

__all__ = ["ExerciseFailed", "LARGEST_UDP_PAYLOAD", "DATAGRAM_SIZES",
           "check_whole_datagram_server", "check_remove_stale_socket",
           "check_unix_datagram_client"]

#: The largest UDP payload over IPv4: 65,535 bytes of IP packet, less the
#: 20-byte IP header and the 8-byte UDP header.
LARGEST_UDP_PAYLOAD = 65_535 - 20 - 8

#: What exercise 1's check sends, in order: each size tells one mistake apart.
DATAGRAM_SIZES = (0, 1, 8192, 8193, LARGEST_UDP_PAYLOAD)


def _implementation_of(server_class):
    """The module that matches the learner's server: sockserv or socketserver."""
    return sockserv if issubclass(server_class, sockserv.BaseServer) else socketserver


@contextlib.contextmanager
def _own_folder():
    """A new folder from tempfile.mkdtemp() for the block; removed with all in it afterwards."""
    folder = tempfile.mkdtemp(prefix="l08-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- exercise 1: whole datagrams -------------------------------------------------


def _datagram_round_trip(address, payload):
    """Send payload in one datagram; return the reply, or None if none came in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        # macOS refuses to send a UDP datagram above 9,216 bytes unless the
        # send buffer is raised (sysctl net.inet.udp.maxdgram); harmless elsewhere.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 17)
        client.settimeout(CLIENT_TIMEOUT)
        client.sendto(payload, address)
        try:
            return client.recv(64)
        except TimeoutError:
            return None


def check_whole_datagram_server(server_class):
    """Check a UDPServer subclass whose handlers see datagrams of up to 65,507 bytes whole.

    The check's handler replies with the number of bytes it was given; every
    size in DATAGRAM_SIZES must come back as itself.
    """
    require_filled_in(server_class)
    name = getattr(server_class, "__name__", "your answer")
    check(isinstance(server_class, type)
          and issubclass(server_class, (socketserver.UDPServer, sockserv.UDPServer)),
          f"{name} must be a class derived from UDPServer.")
    impl = _implementation_of(server_class)

    class CountBytes(impl.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(b"%d" % len(self.rfile.read()))

    try:
        server = recording_errors(server_class)(LOCALHOST, CountBytes)
    except Exception as error:
        raise ExerciseFailed(f"creating a {name} raised {describe_error(error)}.") from None
    with server:
        try:
            with serving(server, stop_timeout=STOP_TIMEOUT):
                for size in DATAGRAM_SIZES:
                    reply = _datagram_round_trip(server.server_address, b"x" * size)
                    check(reply is not None,
                          f"a datagram of {size} bytes got no reply within "
                          f"{CLIENT_TIMEOUT:g} s.")
                    got = int(reply) if reply.isdigit() else None
                    check(got is not None, f"a datagram of {size} bytes was answered with "
                                           f"{preview(reply)}, not a length.")
                    check(got == size,
                          f"a datagram of {size} bytes reached handle() as {got} bytes: "
                          f"the server's max_packet_size ({server.max_packet_size}) is too "
                          f"small, and the rest was thrown away without an error.")
        except TimedOut as stuck:
            raise ExerciseFailed(str(stuck)) from None
    passed(f"datagrams of {', '.join(str(size) for size in DATAGRAM_SIZES)} bytes reached "
           f"handle() whole.")


# -- exercise 2: remove a stale socket file, and nothing else --------------------


def _call(function, path, what):
    """function(path) under a bound; an exception or a hang becomes one sentence."""
    name = getattr(function, "__name__", "your function")
    try:
        return run_bounded(function, path, timeout=CLIENT_TIMEOUT,
                           what=f"{name}() on {what}")
    except TimedOut as stuck:
        raise ExerciseFailed(str(stuck)) from None
    except Exception as error:
        raise ExerciseFailed(f"{name}() on {what} raised {describe_error(error)}.") from None


def _bound_and_closed(path):
    """Leave a socket file at path that nobody listens on, as a crashed server does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)


def _stale_checks(function, folder):
    """Run each case in folder; fail with the first wrong outcome."""
    name = getattr(function, "__name__", "your function")
    path = os.path.join(folder, "server.sock")

    # A regular file in the way (a typo in a configured path, say) must survive.
    with open(path, "wb") as f:
        f.write(b"precious\n")
    result = _call(function, path, "a regular file")
    check(os.path.isfile(path), f"{name}() removed a regular file: check that the path "
                                f"is a socket (stat.S_ISSOCK) before removing it.")
    check(result is False, f"{name}() returned {result!r} for a regular file, "
                           f"expected False.")
    os.unlink(path)

    os.mkdir(path)
    result = _call(function, path, "a folder")
    check(os.path.isdir(path), f"{name}() removed a folder: check that the path is a "
                               f"socket (stat.S_ISSOCK) before removing it.")
    check(result is False, f"{name}() returned {result!r} for a folder, expected False.")
    os.rmdir(path)

    class Answer(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"still here\n")

    # A probe that connects and leaves at once makes Answer's write fail now and
    # then (EPIPE): kept quietly, since the learner's function did nothing wrong.
    with recording_errors(socketserver.UnixStreamServer)(path, Answer) as server:
        with serving(server, stop_timeout=STOP_TIMEOUT):
            result = _call(function, path, "the socket of a live server")
            check(os.path.exists(path),
                  f"{name}() removed the socket of a server that is still listening: try "
                  f"to connect first, and remove the file only if the connection is refused.")
            check(talk(path, family=socket.AF_UNIX) == b"still here\n",
                  f"after {name}() the live server no longer answered on its socket.")
            check(result is False, f"{name}() returned {result!r} for the socket of a live "
                                   f"server, expected False.")
    os.unlink(path)

    _bound_and_closed(path)
    result = _call(function, path, "a stale socket")
    check(not os.path.lexists(path), f"{name}() left a stale socket file in place (nobody "
                                     f"listens on it): remove it.")
    check(result is True, f"{name}() removed a stale socket but returned {result!r}, "
                          f"expected True.")

    result = _call(function, path, "a path where nothing is")
    check(result is False, f"{name}() returned {result!r} where nothing is, expected False.")


def check_remove_stale_socket(function):
    """Check remove_stale_socket(path): True if it removed a stale socket, else False.

    Only a Unix socket that no server accepts connections on may be removed;
    a regular file, a folder and a live server's socket must stay, and a
    path where nothing is gives False, not an exception.
    """
    require_filled_in(function)
    check(callable(function), "remove_stale_socket must be a function that takes a path.")
    with _own_folder() as folder:
        _stale_checks(function, folder)
    passed("only a stale socket file was removed; a regular file, a folder and a live "
           "server's socket were left alone.")


# -- exercise 3: a Unix datagram client that gets its reply ----------------------


class _PairedUpper(socketserver.BaseRequestHandler):
    """Reply with the datagram upper-cased; b"first" waits (bounded) for b"second" to come.

    So two clients at once are really at once: the first is still waiting
    for its reply when the second one binds and sends.
    """

    def handle(self):
        data, sock = self.request
        self.server.clients.append(self.client_address)
        if data == b"first":
            self.server.first_came.set()
            self.server.second_came.wait(CLIENT_TIMEOUT / 2)
        elif data == b"second":
            self.server.second_came.set()
        sock.sendto(data.upper(), self.client_address)
        self.server.replied.append(data)


def _own_socket_left(address):
    """What a client's address says is left on disk after it finished, or None."""
    if not isinstance(address, str) or not address:
        return None  # unbound (None, '') or abstract (bytes): no file
    if os.path.exists(address):
        return "its socket file"
    parent = os.path.dirname(address)
    shared = os.path.realpath(tempfile.gettempdir())
    if (os.path.realpath(parent) != shared and os.path.isdir(parent)
            and not os.listdir(parent)):
        return "the empty folder it made for its socket"
    return None


def _asker(ask, server_path, data, results):
    """A daemon thread that calls ask(server_path, data) and keeps the outcome in results."""
    def run():
        try:
            results[data] = ("reply", ask(server_path, data))
        except BaseException as error:  # reported as a sentence by the check
            results[data] = ("error", error)

    thread = threading.Thread(target=run, name=f"lesson08 ask {data!r}", daemon=True)
    thread.start()
    return thread


def check_unix_datagram_client(ask):
    """Check ask(server_path, data) -> reply for a Unix datagram server.

    The check's server (a ThreadingUnixDatagramServer) replies with the
    datagram upper-cased.  Two clients ask at once: the second, b"second",
    starts once the server has received b"first", whose reply waits until
    b"second" has come.  Each must get its own reply and leave no socket
    file (nor a folder made for it) behind.
    """
    require_filled_in(ask)
    check(callable(ask), "ask must be a function ask(server_path, data).")
    name = getattr(ask, "__name__", "ask")
    with _own_folder() as folder:
        server_path = os.path.join(folder, "upper.sock")
        with recording_errors(socketserver.ThreadingUnixDatagramServer)(
                server_path, _PairedUpper) as server:
            server.clients, server.replied = [], []
            server.first_came, server.second_came = threading.Event(), threading.Event()
            server.daemon_threads = True
            results = {}
            with serving(server, stop_timeout=STOP_TIMEOUT):
                askers = [_asker(ask, server_path, b"first", results)]
                server.first_came.wait(CLIENT_TIMEOUT)
                askers.append(_asker(ask, server_path, b"second", results))
                deadline = time.monotonic() + CLIENT_TIMEOUT + 1
                for asker in askers:
                    asker.join(max(0.0, deadline - time.monotonic()))
        _judge_client(name, server, askers, results)
    passed("two clients at once each got their own reply, and left no socket file behind.")


_READ_ONE = ("one recv() takes one whole datagram, and no b'' ever marks the end of the "
             "replies, so read the reply once.")


def _judge_client(name, server, askers, results):
    """Fail with the first thing wrong, the cause before its symptoms."""
    clients, all_replied = server.clients, len(server.replied) == 2
    check(not any(address in (None, "", b"") for address in clients),
          "the server received a datagram from a socket with no address and could not "
          "reply: bind the client's socket to an address of its own before sending.")
    if any(asker.is_alive() for asker in askers):
        if all_replied:
            raise ExerciseFailed(f"the server replied, but {name}() was still waiting "
                                 f"{CLIENT_TIMEOUT + 1:g} s later: {_READ_ONE}")
        raise ExerciseFailed(f"{name}() did not return within {CLIENT_TIMEOUT + 1:g} s: "
                             f"give the client's socket a timeout.")
    for data in (b"first", b"second"):
        kind, value = results[data]
        if kind == "error" and isinstance(value, TimeoutError) and all_replied:
            raise ExerciseFailed(f"the server replied, but {name}(server_path, {data!r}) "
                                 f"raised TimeoutError waiting for more: {_READ_ONE}")
        if kind == "error":
            if isinstance(value, OSError) and value.errno == errno.EADDRINUSE:
                raise ExerciseFailed(f"{name}(server_path, {data!r}) raised "
                                     f"{describe_error(value)} while another client was "
                                     f"asking: give each client an address of its own "
                                     f"(tempfile.mkdtemp()).")
            raise ExerciseFailed(f"{name}(server_path, {data!r}) raised "
                                 f"{describe_error(value)}.")
        check(value == data.upper(),
              f"{name}(server_path, {data!r}) returned {preview(value)}, expected "
              f"{data.upper()!r}.")
    for address in clients:
        left = _own_socket_left(address)
        check(left is None, f"a client left {left} behind: remove it when {name}() "
                            f"returns, in a finally block.")
