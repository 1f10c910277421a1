"""The life of a server and of each request: hook order, handle_request, binding, options.

The hook-order tests run one scenario on the stdlib and on sockserv and
compare the recorded sequences twice: with an explicit expected list (so
both cannot be wrong together) and with each other.
"""

import contextlib
import errno
import socket
import socketserver

import pytest

from helpers import (
    ALL,
    DGRAM,
    STREAM,
    SYNC,
    TCP,
    UDP,
    class_names,
    datagram_client,
    errors,
    exchange,
    exchange_by_handle_request,
    expected_sequences,
    hook_sequences,
    is_stream,
    is_unix,
    ok_request_hooks,
    on_both,
    recording,
    recording_handler,
    recv_until_eof,
    servers,
    stream_client,
    wait_until,
)

# -- hook order, stdlib and sockserv side by side ---------------------------------


def _recorded(running_server, impl, server_class, payload, *, server_attrs=None, **handler_attrs):
    """Serve one request, stop; return (reply, hook sequences, errors)."""
    server = running_server(
        recording(server_class),
        recording_handler(impl, server_class, **handler_attrs),
        **(server_attrs or {}),
    )
    reply = exchange(server, payload)
    running_server.stop(server)
    loop = [name for where, _, name in server.events if where == "loop"]
    # The loop turns once more after every request: service_actions() follows.
    assert "service_actions" in loop[loop.index("process_request"):]
    return reply, hook_sequences(server.events), errors(server.events)


def _compare(results, expected):
    """The stdlib must match ``expected`` (pins the expectation) and sockserv the stdlib."""
    assert results["stdlib"] == expected
    for label, result in results.items():
        assert result == results["stdlib"], f"{label} differs from stdlib"


@pytest.mark.parametrize("name", class_names(*ALL))
def test_hook_order_for_one_request(running_server, name):
    results = {
        label: _recorded(running_server, impl, server_class, b"hello\n")
        for label, impl, server_class in on_both(name)
    }
    server_class = getattr(socketserver, name)
    _compare(results, (b"hello\n", expected_sequences(server_class, ok_request_hooks()), []))


@pytest.mark.parametrize("name", class_names(*ALL))
def test_hook_order_when_handle_raises(running_server, name):
    results = {
        label: _recorded(running_server, impl, server_class, b"raise boom\n")
        for label, impl, server_class in on_both(name)
    }
    server_class = getattr(socketserver, name)
    request_hooks = [
        "finish_request", "setup", "handle", "finish",  # finish() runs although handle() raised
        "handle_error", "shutdown_request", "close_request",
    ]
    # A datagram handler's finish() still sends what wfile holds: an empty datagram.
    _compare(results, (b"", expected_sequences(server_class, request_hooks), ["ValueError: raise boom"]))


def _handled_once(running_server, server_class, handler, payload=b""):
    """One request through handle_request(); return (what the client got, sequences, errors).

    What the client got is every byte until EOF on a stream, or the one reply
    datagram, or None when no datagram came back.  A stream client sends
    nothing by default: closing a connection with unread input resets it.
    """
    server = running_server(server_class, handler, serve=False)
    with contextlib.ExitStack() as stack:
        if is_stream(server_class):
            client = stack.enter_context(stream_client(server))
            client.sendall(payload)
        else:
            client = stack.enter_context(datagram_client(server))
            client.sendto(payload or b"hello\n", server.server_address)
        assert server.handle_request() is None
        running_server.stop(server)  # waits for handler threads, reaps children
        if is_stream(server_class):
            got = recv_until_eof(client)
        else:
            client.setblocking(False)
            try:
                got = client.recv(65536)
            except BlockingIOError:
                got = None
    return got, hook_sequences(server.events), errors(server.events)


@pytest.mark.parametrize("name", class_names(*ALL))
def test_hook_order_when_setup_raises(running_server, name):
    results = {
        label: _handled_once(
            running_server, recording(cls), recording_handler(impl, cls, fail_setup=True)
        )
        for label, impl, cls in on_both(name)
    }
    server_class = getattr(socketserver, name)
    request_hooks = ["finish_request", "setup", "handle_error", "shutdown_request", "close_request"]
    # No finish(), so a datagram client gets no reply at all.
    got = b"" if is_stream(server_class) else None
    _compare(results, (got, expected_sequences(server_class, request_hooks), ["ValueError: setup failed"]))


@pytest.mark.parametrize("name", class_names(*ALL))
def test_refused_request_is_shut_down_not_handled(running_server, name):
    def refusing(server_class):
        class Refusing(recording(server_class)):
            def verify_request(self, request, client_address):
                super().verify_request(request, client_address)
                return False

        return Refusing

    results = {
        label: _handled_once(running_server, refusing(cls), recording_handler(impl, cls))
        for label, impl, cls in on_both(name)
    }
    got = b"" if is_stream(getattr(socketserver, name)) else None  # EOF, or no reply
    expected = {"loop": [["get_request", "verify_request", "shutdown_request", "close_request"]]}
    _compare(results, (got, expected, []))


@pytest.mark.parametrize("name", class_names(*ALL))
def test_process_request_error_goes_to_handle_error(running_server, name):
    def failing(server_class):
        class Failing(recording(server_class)):
            def process_request(self, request, client_address):
                self.record("process_request")
                raise ValueError("process_request failed")

        return Failing

    results = {
        label: _handled_once(running_server, failing(cls), recording_handler(impl, cls))
        for label, impl, cls in on_both(name)
    }
    got = b"" if is_stream(getattr(socketserver, name)) else None
    hooks = ["get_request", "verify_request", "process_request", "handle_error", "shutdown_request", "close_request"]
    _compare(results, (got, {"loop": [hooks]}, ["ValueError: process_request failed"]))


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_get_request_oserror_drops_the_request_quietly(running_server, impl, server_class):
    class Flaky(recording(server_class)):
        failed = False

        def get_request(self):
            request, client_address = super().get_request()
            if not self.failed:
                self.failed = True
                if is_stream(server_class):
                    request.close()
                raise OSError("simulated accept failure")
            return request, client_address

    server = running_server(Flaky, recording_handler(impl, server_class), serve=False)
    if is_stream(server_class):
        with stream_client(server) as dropped:
            assert server.handle_request() is None
            assert recv_until_eof(dropped) == b""
        assert exchange_by_handle_request(server, b"second\n") == b"second\n"
    else:
        with datagram_client(server) as client:
            client.sendto(b"first\n", server.server_address)
            client.sendto(b"second\n", server.server_address)
            assert server.handle_request() is None
            assert server.handle_request() is None
            # Had the first datagram been handled, its reply would come first.
            assert client.recv(100) == b"second\n"
    running_server.stop(server)
    assert errors(server.events) == []
    assert hook_sequences(server.events)["loop"][0][:4] == [
        "get_request", "get_request", "verify_request", "process_request"
    ]


@pytest.mark.parametrize("impl, server_class", servers(*SYNC))
def test_system_exit_in_handler_shuts_request_down_and_propagates(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class), serve=False)
    with contextlib.ExitStack() as stack:
        if is_stream(server_class):
            client = stack.enter_context(stream_client(server))
            client.sendall(b"exit\n")
        else:
            client = stack.enter_context(datagram_client(server))
            client.sendto(b"exit\n", server.server_address)
        with pytest.raises(SystemExit):
            server.handle_request()
        # The request was still shut down: EOF on a stream, finish()'s empty datagram otherwise.
        assert (recv_until_eof(client) if is_stream(server_class) else client.recv(100)) == b""
    running_server.stop(server)
    hooks = ["get_request", "verify_request", "process_request"] + ok_request_hooks()
    assert hook_sequences(server.events) == {"loop": [hooks]}
    assert errors(server.events) == []


# -- handle_request() and timeouts --------------------------------------------------


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handle_request_serves_exactly_one_request(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class), serve=False)
    assert exchange_by_handle_request(server, b"one\n") == b"one\n"
    running_server.stop(server)
    assert hook_sequences(server.events) == expected_sequences(server_class, ok_request_hooks())
    assert "service_actions" not in [e[2] for e in server.events]  # only serve_forever calls it


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handle_request_times_out_with_server_timeout(running_server, impl, server_class):
    server = running_server(recording(server_class), None, serve=False, timeout=0.01)
    assert server.handle_request() is None
    running_server.stop(server)
    assert hook_sequences(server.events) == {"loop": [["handle_timeout"]]}


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handle_request_times_out_with_socket_timeout(running_server, impl, server_class):
    """A timeout set on the listening socket bounds handle_request() too (older idiom)."""
    server = running_server(recording(server_class), None, serve=False)
    server.socket.settimeout(0.01)
    assert server.handle_request() is None
    running_server.stop(server)
    assert hook_sequences(server.events) == {"loop": [["handle_timeout"]]}


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_handle_request_returns_what_handle_timeout_returns(running_server, impl, server_class):
    class Server(server_class):
        def handle_timeout(self):
            super().handle_timeout()
            return "timed out"

    server = running_server(Server, None, serve=False, timeout=0.01)
    assert server.handle_request() == "timed out"


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_serve_forever_polls_service_actions_and_ignores_timeout(running_server, impl, server_class):
    server = running_server(recording(server_class), None, serve=False, timeout=0.001)
    # A short poll_interval keeps this quick; serve_forever(poll_interval) is what is tested.
    running_server.serve(server, poll_interval=0.01)
    # Idle turns of the loop, each far longer than the 1 ms timeout.
    assert wait_until(lambda: sum(e[2] == "service_actions" for e in server.events) >= 3)
    running_server.stop(server)
    assert {name for _, _, name in server.events} == {"service_actions"}  # no handle_timeout
    assert {where for where, _, _ in server.events} == {"loop"}


# -- creating, binding, closing -------------------------------------------------------


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_constructor_binds_and_reads_the_address_back(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False)
    assert server.server_address == server.socket.getsockname()
    if is_unix(server_class):
        assert isinstance(server.server_address, str) and server.server_address.endswith("/sock")
    else:
        host, port = server.server_address
        assert host == "127.0.0.1" and port != 0
    assert server.socket.family == server_class.address_family
    assert server.socket.type == server_class.socket_type


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_constructor_calls_server_bind_then_server_activate(running_server, impl, server_class):
    calls = []

    class Server(server_class):
        def server_bind(self):
            calls.append("server_bind")
            super().server_bind()

        def server_activate(self):
            calls.append("server_activate")
            super().server_activate()

    running_server(Server, None, serve=False)
    assert calls == ["server_bind", "server_activate"]


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_bind_and_activate_false_defers_binding(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class),
                            serve=False, bind_and_activate=False)
    requested = server.server_address
    assert server.socket.fileno() >= 0
    assert server.socket.getsockname() in ("", ("0.0.0.0", 0)), "bound too early"
    server.server_bind()
    assert server.server_address == server.socket.getsockname()
    if not is_unix(server_class):
        assert requested == ("127.0.0.1", 0) and server.server_address[1] != 0
    server.server_activate()
    assert exchange_by_handle_request(server, b"late\n") == b"late\n"


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_failed_bind_raises_and_closes_the_socket(running_server, impl, server_class):
    first = running_server(server_class, None, serve=False)
    sockets = []

    class Server(server_class):
        def server_bind(self):
            sockets.append(self.socket)
            super().server_bind()

    with pytest.raises(OSError) as info:
        Server(first.server_address, None)
    assert info.value.errno == errno.EADDRINUSE
    assert len(sockets) == 1 and sockets[0].fileno() == -1


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_context_manager_closes_the_socket(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False)
    with server as entered:
        assert entered is server
        assert server.socket.fileno() >= 0
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_context_manager_closes_on_error_and_lets_it_through(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False)
    with pytest.raises(KeyError):
        with server:
            raise KeyError("inside")
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_fileno_is_the_listening_socket(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False)
    assert server.fileno() == server.socket.fileno() >= 0
    server.server_close()
    assert server.fileno() == -1


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_server_close_twice_is_harmless(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False)
    server.server_close()
    server.server_close()
    assert server.socket.fileno() == -1


# -- socket options and listen() -------------------------------------------------------

#: allow_reuse_port is a Python 3.11 addition (and SO_REUSEPORT is not everywhere).
HAS_REUSE_PORT = hasattr(socketserver.TCPServer, "allow_reuse_port")
NEEDS_REUSE_PORT = pytest.mark.skipif(
    not (HAS_REUSE_PORT and hasattr(socket, "SO_REUSEPORT")),
    reason="needs SO_REUSEPORT and Python 3.11+ (socketserver has no allow_reuse_port before)")


@pytest.mark.parametrize("reuse", [False, True], ids=["off", "on"])
@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_allow_reuse_address_sets_so_reuseaddr(running_server, impl, server_class, reuse):
    server = running_server(server_class, None, serve=False, allow_reuse_address=reuse)
    assert bool(server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)) is reuse


@NEEDS_REUSE_PORT
@pytest.mark.parametrize("reuse", [False, True], ids=["off", "on"])
@pytest.mark.parametrize("name", class_names(*ALL))
def test_allow_reuse_port_sets_so_reuseport(running_server, name, reuse):
    """Set when asked; where the family refuses it (AF_UNIX on Linux) both raise alike."""

    def outcome(server_class):
        try:
            server = running_server(server_class, None, serve=False, allow_reuse_port=reuse)
        except OSError as exc:
            return ("refused", exc.errno)
        return ("set", bool(server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)))

    results = {label: outcome(server_class) for label, _, server_class in on_both(name)}
    stdlib_class = getattr(socketserver, name)
    if not (reuse and is_unix(stdlib_class)):
        assert results["stdlib"] == ("set", reuse)
    for label, result in results.items():
        assert result == results["stdlib"], label


@NEEDS_REUSE_PORT
@pytest.mark.parametrize("impl, server_class", servers(*TCP, *UDP))
def test_allow_reuse_port_lets_two_servers_share_a_port(running_server, impl, server_class):
    first = running_server(server_class, None, serve=False, allow_reuse_port=True)

    class Second(server_class):
        allow_reuse_port = True

    with Second(first.server_address, None) as second:
        assert second.server_address == first.server_address


@pytest.mark.skipif(HAS_REUSE_PORT or not hasattr(socket, "SO_REUSEPORT"),
                    reason="Python 3.10 only, where socketserver ignores allow_reuse_port")
@pytest.mark.parametrize("impl, server_class", servers(*TCP, *UDP))
def test_allow_reuse_port_is_ignored_before_python_3_11(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False, allow_reuse_port=True)
    assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0


@pytest.mark.parametrize("option", ["allow_reuse_address", "allow_reuse_port"])
@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_datagram_servers_keep_reuse_off_when_tcpserver_turns_it_on(
        running_server, monkeypatch, impl, server_class, option):
    """``TCPServer.allow_reuse_address = True`` is a common idiom; UDPServer does not inherit it."""
    if not hasattr(impl.TCPServer, option):
        pytest.skip(f"no {option} on this Python")
    monkeypatch.setattr(impl.TCPServer, option, True)
    assert getattr(server_class, option) is False
    server = running_server(server_class, None, serve=False)
    name = {"allow_reuse_address": "SO_REUSEADDR", "allow_reuse_port": "SO_REUSEPORT"}[option]
    if hasattr(socket, name):
        assert server.socket.getsockopt(socket.SOL_SOCKET, getattr(socket, name)) == 0


class ListenSpy:
    """Wraps a socket and records listen() calls; everything else goes to the socket."""

    def __init__(self, sock):
        self.sock = sock
        self.listen_calls = []

    def listen(self, *args):
        self.listen_calls.append(args)
        return self.sock.listen(*args)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.parametrize("size", [None, 17], ids=["default", "17"])
@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_request_queue_size_is_passed_to_listen(running_server, impl, server_class, size):
    attrs = {} if size is None else {"request_queue_size": size}
    server = running_server(server_class, None, serve=False, bind_and_activate=False, **attrs)
    spy = server.socket = ListenSpy(server.socket)
    server.server_bind()
    server.server_activate()
    if is_stream(server_class):
        assert spy.listen_calls == [(5 if size is None else size,)]
    else:
        assert spy.listen_calls == []  # datagram sockets do not listen
    server.server_close()
    assert spy.sock.fileno() == -1


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_stream_server_accepts_after_activate_only(running_server, impl, server_class):
    server = running_server(server_class, None, serve=False, bind_and_activate=False)
    server.server_bind()
    with pytest.raises(OSError):  # bound but not listening: refused
        stream_client(server).close()
    server.server_activate()
    stream_client(server).close()


@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_datagram_server_receives_once_bound(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class),
                            serve=False, bind_and_activate=False)
    server.server_bind()
    assert exchange_by_handle_request(server, b"bound\n") == b"bound\n"
