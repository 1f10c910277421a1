"""Datagram servers (UDP and Unix datagram): one datagram in, one datagram out.

The echo handler reads DatagramRequestHandler's rfile and writes to wfile,
which finish() sends back as a single datagram.
"""

import pytest

from helpers import (
    DGRAM,
    datagram_client,
    errors,
    exchange_by_handle_request,
    recording,
    recording_handler,
    servers,
)

PAYLOADS = [
    b"hello\n",
    b"\x00\x01\xfe\xff binary, with a NUL\n",
    b"",  # an empty datagram is a request too, and gets an empty reply
    b"x" * 8192,  # exactly max_packet_size
]


@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_echo_returns_identical_datagrams_in_order(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class), serve=False)
    with datagram_client(server) as client:
        for payload in PAYLOADS:
            client.sendto(payload, server.server_address)
            server.handle_request()
            assert client.recv(65536) == payload
    running_server.stop(server)
    assert errors(server.events) == []


@pytest.mark.parametrize(
    "max_packet_size, sent, received",
    [
        (None, b"y" * 8193, b"y" * 8192),  # the default, 8192
        (10, b"0123456789ABCDEF\n", b"0123456789"),
    ],
    ids=["default", "10"],
)
@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_longer_datagrams_are_truncated_to_max_packet_size(
    running_server, impl, server_class, max_packet_size, sent, received
):
    attrs = {} if max_packet_size is None else {"max_packet_size": max_packet_size}
    server = running_server(server_class, recording_handler(impl, server_class), serve=False, **attrs)
    assert exchange_by_handle_request(server, sent) == received


@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_replies_go_to_the_client_that_asked(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class), serve=False)
    with datagram_client(server) as first, datagram_client(server) as second:
        first.sendto(b"for first\n", server.server_address)
        second.sendto(b"for second\n", server.server_address)
        server.handle_request()
        server.handle_request()
        assert second.recv(100) == b"for second\n"
        assert first.recv(100) == b"for first\n"


@pytest.mark.parametrize("impl, server_class", servers(*DGRAM))
def test_server_socket_stays_open_between_requests(running_server, impl, server_class):
    """close_request() must not close the shared server socket."""
    server = running_server(server_class, recording_handler(impl, server_class), serve=False)
    for n in range(3):
        assert exchange_by_handle_request(server, b"%d\n" % n) == b"%d\n" % n
        assert server.socket.fileno() >= 0
