"""Request handlers: one instance per request, setup/handle/finish, rfile/wfile, errors.

Server-level tests run a real server; unit tests build a handler directly on
a socket pair (the constructor does all the work), which makes buffering
observable without any timing: the test thread is the only one involved.
"""

import contextlib
import errno
import io
import socket

import pytest

from helpers import (
    ALL,
    STREAM,
    SYNC,
    THREADING,
    TIMEOUT,
    client_for,
    errors,
    exchange,
    exchange_by_handle_request,
    handler_base,
    hook_sequences,
    impls,
    is_stream,
    is_unix,
    read_reply,
    recording,
    recording_handler,
    recv_until_eof,
    send_request,
    servers,
    stream_client,
)

# -- errors in handlers, on a running server -------------------------------------------


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handler_error_goes_to_handle_error_and_serving_goes_on(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class))
    assert exchange(server, b"raise boom\n") == b""
    assert exchange(server, b"next\n") == b"next\n"
    running_server.stop(server)
    assert errors(server.events) == ["ValueError: raise boom"]
    # finish() ran for both requests, also for the one whose handle() raised.
    handler_hooks = [
        [name for name in sequence if name in ("setup", "handle", "finish", "handle_error")]
        for sequences in hook_sequences(server.events).values()
        for sequence in sequences
    ]
    flat = [name for sequence in handler_hooks for name in sequence]
    assert flat == ["setup", "handle", "finish", "handle_error", "setup", "handle", "finish"]


@pytest.mark.parametrize("impl, server_class", servers(*SYNC, *THREADING))
def test_default_handle_error_prints_the_client_and_traceback(running_server, impl, server_class, capsys):
    server = running_server(server_class, recording_handler(impl, server_class), serve=False)
    with client_for(server) as client:
        if is_unix(server_class) and is_stream(server_class):
            client_address = ""  # an unbound Unix stream client has no name
        else:
            client_address = client.getsockname()
        send_request(client, server, b"raise boom\n")
        server.handle_request()
        assert read_reply(client) == b""
        running_server.stop(server)  # the report is complete once handler threads are joined
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == lines[-1] == "-" * 40
    # The wording is each implementation's own; what both must say is that a
    # request failed and which client sent it.
    assert lines[1].startswith("Exception ")
    assert lines[1].endswith(f" request from {client_address}")
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-2] == "ValueError: raise boom"


@pytest.mark.parametrize("impl, server_class", servers(*SYNC, *THREADING))
def test_each_request_gets_a_new_handler_instance(running_server, impl, server_class):
    instances = []

    class Counting(recording_handler(impl, server_class)):
        def handle(self):
            assert not hasattr(self, "handled"), "handler instance reused"
            self.handled = True
            instances.append(self)
            super().handle()

    server = running_server(server_class, Counting, serve=False)
    for number in range(3):
        assert exchange_by_handle_request(server, b"%d\n" % number) == b"%d\n" % number
    running_server.stop(server)
    assert len({id(instance) for instance in instances}) == 3


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handler_attributes(running_server, impl, server_class):
    """request, client_address and server as the stdlib sets them, for each kind."""

    class Describe(handler_base(impl, server_class)):
        def handle(self):
            facts = [repr(self.client_address), repr(self.server.server_address)]
            if is_stream(server_class):
                facts += [
                    type(self.request) is socket.socket,
                    self.connection is self.request,
                    self.request.getsockname() == self.server.server_address,
                ]
                self.rfile.readline()
            else:
                facts += [
                    self.request == (self.packet, self.socket),
                    self.socket is self.server.socket,
                    self.packet,
                ]
            self.wfile.write(repr(facts).encode())

    server = running_server(server_class, Describe, serve=False)
    with client_for(server) as client:
        send_request(client, server, b"tell\n")
        server.handle_request()
        reply = read_reply(client)
        if is_unix(server_class) and is_stream(server_class):
            client_address = ""  # accept() names an unbound Unix client ''
        else:
            client_address = client.getsockname()
    facts = [repr(client_address), repr(server.server_address)]
    facts += [True, True, True] if is_stream(server_class) else [True, True, b"tell\n"]
    assert reply == repr(facts).encode()


# -- StreamRequestHandler on a running server ------------------------------------------


class _Timeouts:
    """Handler mix-in: report the connection's timeout, then echo one line."""

    def handle(self):
        self.wfile.write(b"%r\n" % self.request.gettimeout())
        self.wfile.write(self.rfile.readline())


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_stream_handler_timeout_turns_a_silent_client_into_handle_error(running_server, impl, server_class):
    handler = type("Timeouts", (_Timeouts, impl.StreamRequestHandler), {"timeout": 0.05})
    # handle_request(), so that the prompt client's line is there before the handler
    # reads: a busy machine cannot make it late.
    server = running_server(recording(server_class), handler, serve=False)
    with stream_client(server) as silent:
        server.handle_request()
        assert recv_until_eof(silent) == b"0.05\n"  # then EOF: readline() timed out
    assert exchange_by_handle_request(server, b"prompt\n") == b"0.05\nprompt\n"  # serving goes on
    running_server.stop(server)
    assert errors(server.events) == ["TimeoutError: timed out"]


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_stream_handler_timeout_defaults_to_blocking(running_server, impl, server_class):
    handler = type("Timeouts", (_Timeouts, impl.StreamRequestHandler), {})
    server = running_server(server_class, handler, serve=False)
    assert exchange_by_handle_request(server, b"x\n") == b"None\nx\n"


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_stream_handler_writes_arrive_without_flush(running_server, impl, server_class):
    """wbufsize = 0 (the default): each write is sent at once, before handle() returns."""

    class Talker(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"ready?")
            self.wfile.write(self.rfile.readline())

    server = running_server(server_class, Talker)
    with stream_client(server) as client:
        # The handler is now waiting for us; had it buffered "ready?", this would time out.
        assert client.recv(100) == b"ready?"
        client.sendall(b"go\n")
        assert recv_until_eof(client) == b"go\n"


# -- handlers built by hand: the constructor does all the work --------------------------


class FakeServer:
    """Just enough of a server for a handler's constructor."""

    server_address = ("fake", 0)


@pytest.mark.parametrize("impl", impls())
def test_base_handler_runs_setup_handle_finish(impl):
    calls = []

    class Handler(impl.BaseRequestHandler):
        def setup(self):
            calls.append(("setup", self.request, self.client_address, type(self.server)))

        def handle(self):
            calls.append("handle")

        def finish(self):
            calls.append("finish")

    Handler("the request", ("127.0.0.1", 1), FakeServer())
    assert calls == [("setup", "the request", ("127.0.0.1", 1), FakeServer), "handle", "finish"]


@pytest.mark.parametrize("impl", impls())
def test_base_handler_finish_runs_when_handle_raises(impl):
    calls = []

    class Handler(impl.BaseRequestHandler):
        def handle(self):
            calls.append("handle")
            raise KeyError("from handle")

        def finish(self):
            calls.append("finish")

    with pytest.raises(KeyError, match="from handle"):
        Handler(None, None, FakeServer())
    assert calls == ["handle", "finish"]


@pytest.mark.parametrize("impl", impls())
def test_base_handler_setup_error_skips_handle_and_finish(impl):
    calls = []

    class Handler(impl.BaseRequestHandler):
        def setup(self):
            calls.append("setup")
            raise KeyError("from setup")

        def handle(self):
            calls.append("handle")

        def finish(self):
            calls.append("finish")

    with pytest.raises(KeyError, match="from setup"):
        Handler(None, None, FakeServer())
    assert calls == ["setup"]


@pytest.mark.parametrize("impl", impls())
def test_base_handler_methods_do_nothing(impl):
    handler = impl.BaseRequestHandler("request", "address", FakeServer())
    assert (handler.request, handler.client_address) == ("request", "address")
    assert handler.setup() is None and handler.handle() is None and handler.finish() is None


@contextlib.contextmanager
def _socketpair():
    """(handler side, peer side), both with the test timeout."""
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.settimeout(TIMEOUT)
        peer.settimeout(TIMEOUT)
        yield ours, peer


@contextlib.contextmanager
def _tcp_pair():
    """(handler side, peer side) of a real 127.0.0.1 TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as peer:
            ours, _ = listener.accept()
            with ours:
                ours.settimeout(TIMEOUT)
                yield ours, peer


@pytest.mark.parametrize("impl", impls())
def test_stream_handler_unbuffered_wfile_sends_at_once(impl):
    seen = {}
    with _socketpair() as (ours, peer):

        class Handler(impl.StreamRequestHandler):
            def handle(self):
                seen["returned"] = self.wfile.write(memoryview(b"abc"))
                seen["arrived"] = peer.recv(100)  # before handle() returns, no flush
                seen["file"] = (isinstance(self.wfile, io.BufferedIOBase), self.wfile.writable())
                seen["fileno"] = self.wfile.fileno() == ours.fileno()

        handler = Handler(ours, "peer", FakeServer())
        assert seen == {"returned": 3, "arrived": b"abc", "file": (True, True), "fileno": True}
        assert handler.wfile.closed and handler.rfile.closed  # finish() closed both files
        assert ours.fileno() != -1  # but not the connection: the server does that


@pytest.mark.parametrize("impl", impls())
def test_stream_handler_buffered_wfile_waits_for_finish(impl):
    seen = {}
    with _socketpair() as (ours, peer):

        class Handler(impl.StreamRequestHandler):
            wbufsize = -1

            def handle(self):
                self.wfile.write(b"held")
                peer.setblocking(False)
                try:
                    seen["before finish"] = peer.recv(100)
                except BlockingIOError:
                    seen["before finish"] = None
                peer.setblocking(True)

        Handler(ours, "peer", FakeServer())
        assert seen == {"before finish": None}
        assert peer.recv(100) == b"held"  # finish() flushed it


@pytest.mark.parametrize("rbufsize", [-1, 0], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("impl", impls())
def test_stream_handler_rbufsize(impl, rbufsize):
    """A buffered rfile reads ahead; an unbuffered one leaves the rest in the socket."""
    seen = {}
    with _socketpair() as (ours, peer):
        peer.sendall(b"first\nsecond\n")

        class Handler(impl.StreamRequestHandler):
            def handle(self):
                seen["line"] = self.rfile.readline()
                seen["raw"] = isinstance(self.rfile, io.RawIOBase)
                self.request.setblocking(False)
                try:
                    seen["left in socket"] = self.request.recv(100)
                except BlockingIOError:
                    seen["left in socket"] = None
                    seen["from rfile"] = self.rfile.readline()

        Handler.rbufsize = rbufsize
        Handler(ours, "peer", FakeServer())
    if rbufsize == 0:
        assert seen == {"line": b"first\n", "raw": True, "left in socket": b"second\n"}
    else:
        assert seen == {"line": b"first\n", "raw": False, "left in socket": None, "from rfile": b"second\n"}


@pytest.mark.parametrize("impl", impls())
def test_stream_handler_timeout_raises_from_the_constructor(impl):
    seen = {}
    with _socketpair() as (ours, _peer):

        class Handler(impl.StreamRequestHandler):
            timeout = 0.05

            def handle(self):
                seen["timeout"] = self.connection.gettimeout()
                self.rfile.readline()  # the peer says nothing

            def finish(self):
                super().finish()
                seen["closed"] = self.wfile.closed and self.rfile.closed

        with pytest.raises(TimeoutError):
            Handler(ours, "peer", FakeServer())
    assert seen == {"timeout": 0.05, "closed": True}


@pytest.mark.parametrize("nodelay", [False, True], ids=["nagle", "nodelay"])
@pytest.mark.parametrize("impl", impls())
def test_stream_handler_disable_nagle_algorithm(impl, nodelay):
    seen = []
    with _tcp_pair() as (ours, _peer):

        class Handler(impl.StreamRequestHandler):
            disable_nagle_algorithm = nodelay

            def handle(self):
                seen.append(bool(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))

        Handler(ours, "peer", FakeServer())
    assert seen == [nodelay]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")
@pytest.mark.parametrize("impl", impls())
def test_stream_handler_nodelay_on_a_unix_socket_fails_in_setup(impl):
    calls = []
    with _socketpair() as (ours, _peer):

        class Handler(impl.StreamRequestHandler):
            disable_nagle_algorithm = True

            def handle(self):
                calls.append("handle")

        with pytest.raises(OSError) as info:
            Handler(ours, "peer", FakeServer())
    assert info.value.errno == errno.EOPNOTSUPP and calls == []


@pytest.mark.parametrize("impl", impls())
def test_stream_handler_write_to_a_vanished_peer_raises_and_finish_still_closes(impl):
    closed = []
    with _socketpair() as (ours, peer):

        class Handler(impl.StreamRequestHandler):
            def handle(self):
                peer.close()
                self.wfile.write(b"x" * 100)  # unbuffered: fails here, not in finish()

            def finish(self):
                super().finish()
                closed.append(self.wfile.closed and self.rfile.closed)

        with pytest.raises(BrokenPipeError):
            Handler(ours, "peer", FakeServer())
    assert closed == [True]


# -- DatagramRequestHandler built by hand ------------------------------------------------


@contextlib.contextmanager
def _udp_pair():
    """(server socket, client socket), both bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server_sock:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client_sock:
            for sock in (server_sock, client_sock):
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(TIMEOUT)
            yield server_sock, client_sock


def _nothing_more(sock):
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(100)


@pytest.mark.parametrize("impl", impls())
def test_datagram_handler_reply_is_one_datagram(impl):
    seen = {}
    with _udp_pair() as (server_sock, client_sock):

        class Handler(impl.DatagramRequestHandler):
            def handle(self):
                seen["packet"] = self.packet
                seen["socket"] = self.socket is server_sock
                seen["lines"] = [self.rfile.readline(), self.rfile.read()]
                for part in (b"one ", b"two ", b"three"):
                    self.wfile.write(part)

        Handler((b"line 1\nline 2\n", server_sock), client_sock.getsockname(), FakeServer())
        assert seen == {"packet": b"line 1\nline 2\n", "socket": True, "lines": [b"line 1\n", b"line 2\n"]}
        assert client_sock.recv(100) == b"one two three"
        _nothing_more(client_sock)


@pytest.mark.parametrize("impl", impls())
def test_datagram_handler_sends_an_empty_datagram_when_nothing_was_written(impl):
    with _udp_pair() as (server_sock, client_sock):
        impl.DatagramRequestHandler((b"ignored", server_sock), client_sock.getsockname(), FakeServer())
        assert client_sock.recv(100) == b""
        _nothing_more(client_sock)


@pytest.mark.parametrize("impl", impls())
def test_datagram_handler_sends_what_was_written_when_handle_raises(impl):
    with _udp_pair() as (server_sock, client_sock):

        class Handler(impl.DatagramRequestHandler):
            def handle(self):
                self.wfile.write(b"partial")
                raise KeyError("half way")

        with pytest.raises(KeyError):
            Handler((b"x", server_sock), client_sock.getsockname(), FakeServer())
        assert client_sock.recv(100) == b"partial"
