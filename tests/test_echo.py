"""The Echo server (RFC 862), in process, on every engine and in every mode.

Every scenario runs against every engine of engines.NAMES: `socketserver` and `sockserv` in
the sync, threading and forking modes, and asyncio (one event loop, no mode), over real sockets
on 127.0.0.1 with port 0.  A server is started by `running()`,
which always stops it and checks that its thread ended.
"""

import contextlib
import os
import select
import signal
import socket
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from helpers import recv_until_eof

from sockserv.examples import engines

HOST = "127.0.0.1"
TIMEOUT = 5.0

# Python 3.12+ warns when a multi-threaded process forks (pytest's warnings-as-errors would
# turn that into a failure inside the server); the forking servers are what is under test.
_FORK_WARNING = pytest.mark.filterwarnings(
    "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
_NEEDS_FORK = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
_MODE_MARKS = {"sync": [], "threading": [], "forking": [_NEEDS_FORK, _FORK_WARNING]}
#: (impl, mode): each threaded engine in each mode, and asyncio, which has none.
MODES = [pytest.param(name, mode, marks=_MODE_MARKS[mode], id=f"{name}-{mode}")
         for name in engines.THREADED for mode in _MODE_MARKS]
MODES += [pytest.param(name, None, id=name) for name in engines.NAMES
          if name not in engines.THREADED]


@pytest.fixture(params=engines.NAMES)
def impl(request):
    """The engine's name, as --impl gives it."""
    return request.param


def make_server(address, *, impl, udp=False, mode=None):
    """An echo server on engine impl."""
    return engines.echo_server(impl, address, udp=udp, mode=mode)


@contextlib.contextmanager
def running(server):
    """Serve in a thread; on the way out stop() the server and check the thread ended."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "serve_forever() did not return after stop()"


def connect(server):
    """A TCP client connected to the server, with a timeout on every operation."""
    return socket.create_connection(server.server_address[:2], timeout=TIMEOUT)


def echo_through(server, chunks):
    """Send chunks on a new connection, half-close, and return all that comes back."""
    with connect(server) as sock:
        # A sender thread: a big payload would fill both socket buffers if we only sent.
        sender = threading.Thread(target=_send_then_half_close, args=(sock, chunks))
        sender.start()
        try:
            return recv_until_eof(sock)
        finally:
            sender.join(TIMEOUT)
            assert not sender.is_alive()


def _send_then_half_close(sock, chunks):
    for chunk in chunks:
        sock.sendall(chunk)
    sock.shutdown(socket.SHUT_WR)


# -- TCP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_any_bytes_however_chunked_come_back_unchanged(impl, mode):
    # One server for all the examples: starting one per example would dominate the run time.
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:

        @settings(max_examples=25, deadline=None, database=None)
        @given(st.lists(st.binary(max_size=3000), max_size=6))
        def check(chunks):
            assert echo_through(server, chunks) == b"".join(chunks)

        check()


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_nul_binary_and_invalid_utf8_sent_byte_by_byte(impl, mode):
    payload = b"\x00\xff\xfe\xc3(\r\n" + bytes(range(256)) + b"caf\xc3"
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:
        assert echo_through(server, [payload[i:i + 1] for i in range(len(payload))]) == payload


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_one_mebibyte_is_echoed_exactly(impl, mode):
    payload = os.urandom(1 << 20)
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:
        assert echo_through(server, [payload]) == payload


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_half_closed_client_gets_everything_then_eof(impl, mode):
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:
        with connect(server) as sock:
            sock.sendall(b"first ")
            assert sock.recv(100) == b"first "      # the conversation is live
            sock.sendall(b"last words")
            sock.shutdown(socket.SHUT_WR)
            assert recv_until_eof(sock) == b"last words"
            assert sock.recv(100) == b""            # and the end stays the end


def test_threading_mode_serves_clients_at_the_same_time(impl):
    mode = "threading" if impl in engines.THREADED else None    # asyncio: its event loop
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:
        with connect(server) as first, connect(server) as second:
            second.sendall(b"two")                  # while the first one is still connected
            assert second.recv(10) == b"two"
            first.sendall(b"one")
            assert first.recv(10) == b"one"


# -- UDP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_each_datagram_goes_back_unchanged_to_its_sender(impl, mode):
    datagrams = [b"hello", b"\x00\xff\xfe", b"", os.urandom(60000)]
    with running(make_server((HOST, 0), impl=impl, udp=True, mode=mode)) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            for sock in (one, other):
                sock.settimeout(TIMEOUT)
                sock.bind((HOST, 0))
            for datagram in datagrams:
                one.sendto(datagram, server.server_address)
                data, sender = one.recvfrom(65536)
                assert (data, sender) == (datagram, server.server_address)
            other.sendto(b"other", server.server_address)
            assert other.recvfrom(100)[0] == b"other"


def test_udp_port_cannot_be_shared(impl):
    # SO_REUSEADDR would let two UDP servers bind one port on Linux; ours must refuse.
    with running(make_server((HOST, 0), impl=impl, udp=True)) as server:
        with pytest.raises(OSError):
            make_server(server.server_address, impl=impl, udp=True)


# -- stop() -------------------------------------------------------------------------------


def _children(server):
    return set(getattr(server, "active_children", None) or ())


def _wait_until(condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_stop_with_clients_connected_returns_and_leaves_nothing(impl, mode):
    threads_before = set(threading.enumerate())
    server = make_server((HOST, 0), impl=impl, mode=mode)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    clients = []
    try:
        talking = connect(server)
        clients.append(talking)
        talking.sendall(b"ping")
        assert talking.recv(10) == b"ping"          # its handler is running now
        # More clients: idle ones (in sync mode they wait in the listen backlog).
        clients += [connect(server) for _ in range(3)]
        if mode == "threading":
            assert _wait_until(lambda: len(threading.enumerate()) >= len(threads_before) + 5)
        if mode == "forking":
            assert _wait_until(lambda: len(_children(server)) == 4)
        children = _children(server)
        started = time.monotonic()
        server.stop()
        print(f"stop() took {time.monotonic() - started:.3f} s ({mode})")
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert server.socket.fileno() == -1             # the listening socket is closed
        for client in clients:
            try:
                assert client.recv(10) == b""
            except ConnectionResetError:    # sync mode: never accepted, reset on close
                pass
        assert _wait_until(lambda: set(threading.enumerate()) <= threads_before)
        assert not _children(server)
        for pid in children:                            # reaped: no zombie left behind
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    finally:
        server.stop()
        thread.join(TIMEOUT)
        for client in clients:
            client.close()


@pytest.mark.parametrize(("impl", "mode"), MODES)
def test_stop_does_not_wait_for_a_client_that_stopped_reading(impl, mode):
    with running(make_server((HOST, 0), impl=impl, mode=mode)) as server:
        sock = connect(server)
        # It sends far more than the socket buffers hold and never reads: the handler ends
        # up blocked in sendall(), and this client's own sendall() blocks too.
        sender = threading.Thread(target=_flood, args=(sock,))
        sender.start()
        try:
            # Echoes are arriving (and not being read): the server is writing to us.
            assert select.select([sock], [], [], TIMEOUT)[0]
            started = time.monotonic()
            server.stop()
            print(f"stop() took {time.monotonic() - started:.3f} s ({mode})")
        finally:
            sender.join(TIMEOUT)
            sock.close()
        assert not sender.is_alive()


def _flood(sock):
    try:
        sock.sendall(b"x" * (16 << 20))
    except OSError:                 # cut off by stop(): that is the point
        pass


def test_stop_is_idempotent_and_works_without_serving(impl):
    server = make_server((HOST, 0), impl=impl)
    server.stop()
    server.stop()
    assert server.socket.fileno() == -1
    server.serve_forever(poll_interval=0.05)        # returns at once: it has been stopped


def test_stop_from_two_threads_at_once(impl):
    with running(make_server((HOST, 0), impl=impl)) as server:
        with connect(server) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            others = [threading.Thread(target=server.stop) for _ in range(3)]
            for other in others:
                other.start()
            for other in others:
                other.join(TIMEOUT)
                assert not other.is_alive()
            assert sock.recv(1) == b""


@_NEEDS_FORK
@_FORK_WARNING
@pytest.mark.parametrize("impl", engines.THREADED)
def test_forked_children_die_on_sigterm_even_if_the_parent_catches_it(impl):
    # The parent catches SIGTERM, as the command line does; a child must not inherit that.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        with running(make_server((HOST, 0), impl=impl, mode="forking")) as server:
            with connect(server) as sock:
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"         # the child is past its set-up
                # The parent records the pid after fork() returns, which can be
                # after the child has already answered: wait for it, bounded.
                assert _wait_until(lambda: len(_children(server)) == 1)
                (pid,) = _children(server)
                os.kill(pid, signal.SIGTERM)
                assert sock.recv(1) == b""          # the child died, closing the connection
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_unknown_mode_is_refused(impl):
    with pytest.raises(ValueError, match="mode"):
        make_server((HOST, 0), impl=impl, mode="async")
