"""Unix-domain servers: the address is a path, and the socket file outlives the server.

The stdlib never removes the socket file (neither does sockserv): whoever
created the server removes it, as the running_server fixture does.
"""

import errno
import os
import shutil
import socket
import tempfile

import pytest

from helpers import (
    TIMEOUT,
    UNIX_DGRAM,
    UNIX_STREAM,
    errors,
    exchange_by_handle_request,
    recording,
    recording_handler,
    recv_until_eof,
    servers,
    stream_client,
)

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")


@pytest.mark.parametrize("impl, server_class", servers(*UNIX_STREAM, *UNIX_DGRAM))
def test_socket_file_exists_while_serving_and_after_close(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class), serve=False)
    path = server.server_address
    assert isinstance(path, str) and os.path.exists(path)
    assert exchange_by_handle_request(server, b"ping\n") == b"ping\n"
    server.server_close()
    assert server.socket.fileno() == -1
    assert os.path.exists(path), "the stdlib leaves the socket file; so must sockserv"
    running_server.stop(server)  # removes it
    assert not os.path.exists(path)


@pytest.mark.parametrize("impl, server_class", servers(*UNIX_STREAM, *UNIX_DGRAM))
def test_bytes_path_is_accepted_and_read_back_as_str(impl, server_class):
    tmpdir = tempfile.mkdtemp(prefix="ss-")
    try:
        path = os.path.join(tmpdir, "sock")
        with server_class(os.fsencode(path), None) as server:
            assert server.server_address == path
    finally:
        shutil.rmtree(tmpdir)


@pytest.mark.parametrize("impl, server_class", servers(*UNIX_STREAM))
def test_bound_stream_client_is_named_by_its_path(running_server, impl, server_class):
    class Who(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(repr(self.client_address).encode())

    server = running_server(server_class, Who, serve=False)
    tmpdir = tempfile.mkdtemp(prefix="ssc-")
    try:
        client_path = os.path.join(tmpdir, "client")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(TIMEOUT)
            client.bind(client_path)
            client.connect(server.server_address)
            server.handle_request()
            assert recv_until_eof(client) == repr(client_path).encode()
    finally:
        shutil.rmtree(tmpdir)


@pytest.mark.parametrize("impl, server_class", servers(*UNIX_STREAM))
def test_nagle_option_on_a_unix_stream_goes_to_handle_error(running_server, impl, server_class):
    """TCP_NODELAY means nothing on AF_UNIX: setup() fails and handle_error() reports it."""
    handler = recording_handler(impl, server_class, disable_nagle_algorithm=True)
    server = running_server(recording(server_class), handler, serve=False)
    with stream_client(server) as client:
        server.handle_request()
        assert recv_until_eof(client) == b""
    running_server.stop(server)
    not_supported = errno.EOPNOTSUPP
    assert errors(server.events) == [f"OSError: [Errno {not_supported}] {os.strerror(not_supported)}"]
