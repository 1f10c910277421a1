"""Stream servers (TCP and Unix stream): the same bytes back, connection after connection.

The echo handler reads one line and writes it back with StreamRequestHandler's
rfile/wfile; the client reads until EOF, which also proves the server shut
the connection down.
"""

import socket

import pytest

from helpers import (
    FORKING,
    STREAM,
    THREADING,
    errors,
    exchange,
    exchange_by_handle_request,
    hook_sequences,
    recording,
    recording_handler,
    recv_exactly,
    recv_until_eof,
    servers,
    stream_client,
)

PAYLOADS = [
    b"hello\n",
    b"\x00\x01\xfe\xff binary, with a NUL\n",
    b"no newline at the end",  # the client's EOF ends readline()
    b"\n",
    ("d\u00e9j\u00e0 vu \u2603\n").encode(),
    b"x" * (1 << 20) + b"\n",  # 1 MiB: wfile.write() must send it all (sendall)
]


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_echo_returns_identical_bytes(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class))
    for payload in PAYLOADS:
        with stream_client(server) as client:
            client.sendall(payload)
            if not payload.endswith(b"\n"):
                client.shutdown(socket.SHUT_WR)  # EOF for the handler's readline()
            assert recv_until_eof(client) == payload
    running_server.stop(server)
    assert errors(server.events) == []


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_many_connections_one_after_another(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class))
    replies = [exchange(server, b"request %d\n" % n) for n in range(8)]
    assert replies == [b"request %d\n" % n for n in range(8)]
    running_server.stop(server)
    sequences = hook_sequences(server.events)
    # One get_request per connection, and each connection fully finished.
    assert [e[2] for e in server.events].count("get_request") == 8
    assert sum(seq.count("close_request") for seqs in sequences.values() for seq in seqs) >= 8


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_client_that_closes_without_sending(running_server, impl, server_class):
    """readline() returns b'' at EOF: the handler writes nothing and nothing goes wrong."""
    server = running_server(recording(server_class), recording_handler(impl, server_class), serve=False)
    with stream_client(server) as client:
        # shutdown(), not just close(): a forked child holds a copy of this socket,
        # and close() sends no FIN while any copy is open.
        client.shutdown(socket.SHUT_WR)
        server.handle_request()
        assert recv_until_eof(client) == b""
    assert exchange_by_handle_request(server, b"still here\n") == b"still here\n"
    running_server.stop(server)
    assert errors(server.events) == []


@pytest.mark.parametrize("impl, server_class", servers(*STREAM))
def test_line_by_line_conversation(running_server, impl, server_class):
    """rfile and wfile on one connection, several exchanges before EOF."""

    class Chat(impl.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(b"> " + line)

    server = running_server(server_class, Chat)
    with stream_client(server) as client:
        for word in (b"one", b"two", b"three"):
            client.sendall(word + b"\n")
            assert recv_exactly(client, len(word) + 3) == b"> " + word + b"\n"
        client.shutdown(socket.SHUT_WR)
        assert recv_until_eof(client) == b""


CONCURRENT = tuple(n for n in STREAM if n in THREADING + FORKING)


@pytest.mark.parametrize("impl, server_class", servers(*CONCURRENT))
def test_a_slow_client_does_not_hold_up_others(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class))
    with stream_client(server) as slow:
        # The first handler now waits for this client's line; the others are still served.
        for n in range(3):
            assert exchange(server, b"quick %d\n" % n) == b"quick %d\n" % n
        slow.sendall(b"slow\n")
        assert recv_until_eof(slow) == b"slow\n"
