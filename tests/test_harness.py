"""The lesson harness keeps its contracts: bytes, shutdown order, and bounds.

Every test here starts real servers on 127.0.0.1 port 0 (or in its own
tmp_path) and ends every thread it starts: code made to hang is released
with an Event afterwards and its thread joined, so nothing outlives a test.
"""

import socket
import socketserver
import threading

import pytest

import sockserv
from sockserv.teach import harness, serving

import helpers
from helpers import impls

IMPLS = impls()  # one per harness.IMPLEMENTATIONS entry, ids "stdlib", "sockserv"
#: Bound for the waits of the tests themselves (a hang check only).
WAIT = 5.0


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(WAIT)
    assert not [t.name for t in left if t.is_alive()]


def echo_to_eof(impl):
    class EchoToEOF(impl.BaseRequestHandler):
        def handle(self):
            while data := self.request.recv(4096):
                self.request.sendall(data)
    return EchoToEOF


def test_the_shared_names():
    assert harness.IMPLEMENTATIONS == {"stdlib": socketserver, "sockserv": sockserv}
    assert harness.LOCALHOST == ("127.0.0.1", 0)
    assert harness.POLL_INTERVAL == 0.05
    assert 0 < harness.STOP_TIMEOUT <= harness.CLIENT_TIMEOUT
    assert serving.serving is harness.serving
    # The core tests' copy must not drift from the harness (until it imports it).
    assert helpers.IMPLEMENTATIONS == harness.IMPLEMENTATIONS


@pytest.mark.parametrize("impl", IMPLS)
def test_talk_half_closes_and_reads_to_eof(impl):
    # The handler replies only after recv() returns b'': without the
    # half-close it would never answer.
    with impl.TCPServer(harness.LOCALHOST, echo_to_eof(impl)) as server:
        with harness.serving(server):
            reply = harness.talk(server.server_address, b"spam, ", b"x" * 100000, b"eggs")
    assert reply == b"spam, " + b"x" * 100000 + b"eggs"


@pytest.mark.parametrize("impl", IMPLS)
def test_talk_without_half_close_waits_for_the_server_to_close(impl):
    seen_eof = []

    class OneLine(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())
            # The client keeps its side open: recv() would block, not return b''.
            self.request.settimeout(0.1)
            try:
                seen_eof.append(self.request.recv(1) == b"")
            except TimeoutError:
                seen_eof.append(False)

    with impl.TCPServer(harness.LOCALHOST, OneLine) as server:
        with harness.serving(server):
            reply = harness.talk(server.server_address, b"abc\n", half_close=False)
    assert reply == b"ABC\n"
    assert seen_eof == [False]


def test_talk_raises_timeout_with_what_arrived():
    release = threading.Event()

    class SendsThenWaits(sockserv.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"part")
            release.wait(WAIT)

    with sockserv.TCPServer(harness.LOCALHOST, SendsThenWaits) as server:
        with harness.serving(server):
            try:
                with pytest.raises(TimeoutError) as caught:
                    harness.talk(server.server_address, b"hi", timeout=1.0)
            finally:
                release.set()
    assert caught.value.received == b"part"


def test_talk_connection_refused_leaves_nothing_open():
    with socket.socket() as unused:
        unused.bind(harness.LOCALHOST)
        address = unused.getsockname()  # bound, not listening: connect is refused
        with pytest.raises(ConnectionRefusedError):
            harness.talk(address, b"hi")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX on this platform")
@pytest.mark.parametrize("impl", IMPLS)
def test_talk_over_a_unix_socket(impl, tmp_path):
    path = str(tmp_path / "echo.sock")
    with impl.UnixStreamServer(path, echo_to_eof(impl)) as server:
        with harness.serving(server):
            assert harness.talk(path, b"over ", b"unix", family=socket.AF_UNIX) == b"over unix"


def test_read_line_takes_one_line_and_leaves_the_rest():
    left, right = socket.socketpair()
    with left, right:
        right.settimeout(WAIT)
        left.sendall(b"one\ntwo\n")
        left.shutdown(socket.SHUT_WR)
        assert harness.read_line(right) == b"one\n"
        assert harness.read_all(right) == b"two\n"
        assert harness.read_line(right) == b""


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("stop_timeout", [None, harness.STOP_TIMEOUT])
def test_serving_stops_joins_and_closes_even_when_the_block_raises(impl, stop_timeout):
    server = impl.TCPServer(harness.LOCALHOST, impl.BaseRequestHandler)
    with pytest.raises(RuntimeError, match="the block failed"):
        with harness.serving(server, stop_timeout=stop_timeout) as served:
            assert served is server
            raise RuntimeError("the block failed")
    assert server.socket.fileno() == -1
    # no_thread_left_behind checks that the serving thread was joined.


@pytest.mark.parametrize("impl", IMPLS)
def test_serving_re_raises_what_ended_the_loop(impl):
    class Refuses(impl.TCPServer):
        def verify_request(self, request, client_address):
            self.shutdown_request(request)
            raise ValueError("verify_request failed")

    server = Refuses(harness.LOCALHOST, impl.BaseRequestHandler)
    with pytest.raises(ValueError, match="verify_request failed"):
        with harness.serving(server):
            assert harness.talk(server.server_address, b"") == b""
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("server_name", ["TCPServer", "ThreadingTCPServer"])
def test_serving_with_stop_timeout_gives_up_on_a_stuck_handler(impl, server_name):
    # Sync: shutdown() waits for the stuck request.  Threading: shutdown()
    # returns, and server_close() waits for the handler thread.  Both bounded.
    started, release = threading.Event(), threading.Event()

    class Stuck(impl.BaseRequestHandler):
        def handle(self):
            started.set()
            release.wait(WAIT)

    server = getattr(impl, server_name)(harness.LOCALHOST, Stuck)
    client = harness.connect(server.server_address)
    try:
        with pytest.raises(harness.TimedOut, match=r"^the server did not stop within 0\.2 s"):
            with harness.serving(server, stop_timeout=0.2):
                assert started.wait(WAIT)
        assert server.socket.fileno() == -1  # no new client can connect
    finally:
        release.set()
        client.close()
    # no_thread_left_behind joins the stop thread, which completes the stop.


def test_run_bounded_returns_and_passes_arguments():
    assert harness.run_bounded(divmod, 17, 5, timeout=WAIT, what="divmod") == (3, 2)
    assert harness.run_bounded(int, "ff", base=16, timeout=WAIT, what="int") == 255


def test_run_bounded_re_raises_the_same_exception():
    error = KeyError("the learner's bug")

    def fails():
        raise error

    with pytest.raises(KeyError) as caught:
        harness.run_bounded(fails, timeout=WAIT, what="fails()")
    assert caught.value is error


def test_run_bounded_times_out_with_one_sentence():
    release = threading.Event()
    try:
        with pytest.raises(harness.TimedOut) as caught:
            harness.run_bounded(release.wait, WAIT, timeout=0.1, what="serve_until_quiet()")
        assert str(caught.value) == "serve_until_quiet() did not finish within 0.1 s."
        assert caught.value.thread.daemon
    finally:
        release.set()


@pytest.mark.parametrize("impl", IMPLS)
def test_recording_errors_records_and_prints_nothing(impl, capfd):
    class Fails(impl.BaseRequestHandler):
        def handle(self):
            raise LookupError(self.request.recv(100).decode())

    server_class = harness.recording_errors(impl.TCPServer)
    assert issubclass(server_class, impl.TCPServer)
    assert server_class.__name__ == "RecordingTCPServer"
    with server_class(harness.LOCALHOST, Fails) as server:
        with harness.serving(server):
            for word in (b"first", b"second"):
                with harness.connect(server.server_address) as client:
                    client.sendall(word)
                    client.shutdown(socket.SHUT_WR)
                    harness.read_all(client)  # EOF: the server has handled it
    assert [(type(e), str(e)) for _, e in server.errors] == [
        (LookupError, "first"), (LookupError, "second")]
    assert all(address[0] == "127.0.0.1" for address, _ in server.errors)
    assert capfd.readouterr() == ("", "")
