"""Lesson 08's exercise checks: they pass the worked solutions, on both
implementations where the answer is a server class, and fail each plausible
wrong answer with one sentence that says what is wrong, within a bound.
Every Unix socket lives in this test's own temporary folder."""

import os
import shutil
import socket
import stat
import tempfile

import pytest

from lesson_checks import BOTH, fails_with, passes, short_bounds_for
from sockserv.teach import lesson08
from sockserv.teach.harness import IMPLEMENTATIONS

stdlib = IMPLEMENTATIONS["stdlib"]
short_bounds = short_bounds_for(lesson08, client=0.5, stop=1.0)
UNIX = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


def nothing_left_in_tmpdir(before):
    assert sorted(os.listdir(tempfile.gettempdir())) == before


# -- exercise 1: whole datagrams ---------------------------------------------------


@BOTH
def test_whole_datagram_solution_passes(impl, capsys):
    class WholeDatagramServer(impl.UDPServer):
        max_packet_size = lesson08.LARGEST_UDP_PAYLOAD

    passes(lesson08.check_whole_datagram_server, WholeDatagramServer, capsys=capsys)


def test_whole_datagram_a_bigger_buffer_passes_too(capsys):
    class Generous(stdlib.UDPServer):
        max_packet_size = 1 << 16

    passes(lesson08.check_whole_datagram_server, Generous, capsys=capsys)


@BOTH
def test_whole_datagram_the_default_cuts_at_8192(impl):
    class WholeDatagramServer(impl.UDPServer):
        pass

    message = fails_with(lesson08.check_whole_datagram_server, WholeDatagramServer,
                         words="a datagram of 8193 bytes reached handle() as 8192 bytes")
    assert "max_packet_size (8192)" in message


def test_whole_datagram_a_guess_that_is_not_enough():
    class WholeDatagramServer(stdlib.UDPServer):
        max_packet_size = 65_000

    fails_with(lesson08.check_whole_datagram_server, WholeDatagramServer,
               words="a datagram of 65507 bytes reached handle() as 65000 bytes")


def test_whole_datagram_set_on_the_handler_instead_of_the_server():
    # The learner subclasses the server but sets the receive buffer instead:
    # SO_RCVBUF is how many datagrams can wait, not how much of one is read.
    class WholeDatagramServer(stdlib.UDPServer):
        def server_bind(self):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            super().server_bind()

    fails_with(lesson08.check_whole_datagram_server, WholeDatagramServer,
               words="reached handle() as 8192 bytes")


def test_whole_datagram_not_a_udp_server():
    fails_with(lesson08.check_whole_datagram_server, stdlib.TCPServer,
               words="must be a class derived from UDPServer")


def test_whole_datagram_placeholder():
    class WholeDatagramServer(stdlib.UDPServer):
        max_packet_size = ...

    fails_with(lesson08.check_whole_datagram_server, WholeDatagramServer,
               words="fill in the ... in WholeDatagramServer first")


# -- exercise 2: remove a stale socket file, and nothing else ---------------------


def remove_stale_socket(path):
    """The worked solution."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass
        else:
            return False
    os.unlink(path)
    return True


@UNIX
def test_stale_solution_passes_and_leaves_nothing(capsys):
    before = sorted(os.listdir(tempfile.gettempdir()))
    passes(lesson08.check_remove_stale_socket, remove_stale_socket, capsys=capsys)
    nothing_left_in_tmpdir(before)


@UNIX
def test_stale_a_probe_that_leaves_at_once_prints_nothing(capsys):
    # The live server's handler may find the probe gone (EPIPE): no traceback on stderr.
    for _ in range(5):
        passes(lesson08.check_remove_stale_socket, remove_stale_socket, capsys=capsys)


@UNIX
def test_stale_unlink_whatever_is_there():
    def remove_stale_socket(path):
        os.unlink(path)
        return True

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="removed a regular file")


@UNIX
def test_stale_exists_is_not_enough():
    def remove_stale_socket(path):
        if os.path.exists(path):
            os.unlink(path)
            return True
        return False

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="removed a regular file: check that the path is a socket")


@UNIX
def test_stale_refused_connection_without_the_socket_test():
    # connect() to a regular file is refused too (ECONNREFUSED on Linux):
    # a liveness test alone removes the learner's file.
    def remove_stale_socket(path):
        if not os.path.exists(path) or os.path.isdir(path):
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
                return False
            except OSError:
                os.unlink(path)
                return True

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="removed a regular file")


@UNIX
def test_stale_socket_test_without_the_liveness_test():
    def remove_stale_socket(path):
        if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
            return True
        return False

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="removed the socket of a server that is still listening")


@UNIX
def test_stale_missing_path_raises():
    def remove_stale_socket(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
                return False
            except ConnectionRefusedError:
                os.unlink(path)
                return True

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="on a path where nothing is raised FileNotFoundError")


@UNIX
def test_stale_never_removes():
    def remove_stale_socket(path):
        return False

    fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
               words="left a stale socket file in place")


@UNIX
def test_stale_hang_is_bounded(short_bounds):
    import threading
    release = threading.Event()

    def remove_stale_socket(path):
        release.wait(10)
        return False

    try:
        fails_with(lesson08.check_remove_stale_socket, remove_stale_socket,
                   words="did not finish within 0.5 s")
    finally:
        release.set()


# -- exercise 3: a Unix datagram client that gets its reply -----------------------


def ask(server_path, data):
    """The worked solution."""
    folder = tempfile.mkdtemp()
    own = os.path.join(folder, "client.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.bind(own)
            try:
                sock.sendto(data, server_path)
                return sock.recv(65536)
            finally:
                os.unlink(own)
    finally:
        os.rmdir(folder)


@UNIX
def test_client_solution_passes_and_leaves_nothing(capsys):
    before = sorted(os.listdir(tempfile.gettempdir()))
    passes(lesson08.check_unix_datagram_client, ask, capsys=capsys)
    nothing_left_in_tmpdir(before)


@UNIX
@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="autobind is Linux only")
def test_client_linux_autobind_passes(capsys):
    def ask(server_path, data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.bind("")  # Linux: a fresh abstract address, no file at all
            sock.sendto(data, server_path)
            return sock.recv(65536)

    passes(lesson08.check_unix_datagram_client, ask, capsys=capsys)


@UNIX
def test_client_that_does_not_bind(short_bounds):
    def ask(server_path, data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.sendto(data, server_path)
            return sock.recv(65536)

    fails_with(lesson08.check_unix_datagram_client, ask,
               words="bind the client's socket to an address of its own")


@UNIX
def test_client_that_leaves_its_socket_file(short_bounds):
    folders = []

    def ask(server_path, data):
        folder = tempfile.mkdtemp()
        folders.append(folder)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.bind(os.path.join(folder, "client.sock"))
            sock.sendto(data, server_path)
            return sock.recv(65536)

    try:
        fails_with(lesson08.check_unix_datagram_client, ask,
                   words="a client left its socket file behind")
    finally:
        for folder in folders:
            shutil.rmtree(folder)


@UNIX
def test_client_that_leaves_its_empty_folder(short_bounds):
    folders = []

    def ask(server_path, data):
        folder = tempfile.mkdtemp()
        folders.append(folder)
        own = os.path.join(folder, "client.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.bind(own)
            try:
                sock.sendto(data, server_path)
                return sock.recv(65536)
            finally:
                os.unlink(own)

    try:
        fails_with(lesson08.check_unix_datagram_client, ask,
                   words="a client left the empty folder it made for its socket behind")
    finally:
        for folder in folders:
            os.rmdir(folder)


@UNIX
def test_client_with_one_fixed_address(short_bounds):
    fixed = os.path.join(tempfile.gettempdir(), "client.sock")

    def ask(server_path, data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.bind(fixed)
            try:
                sock.sendto(data, server_path)
                return sock.recv(65536)
            finally:
                os.unlink(fixed)

    fails_with(lesson08.check_unix_datagram_client, ask,
               words="while another client was asking: give each client an address of its own")
    assert not os.path.exists(fixed)


@UNIX
def test_client_without_a_timeout_is_bounded(short_bounds):
    # No timeout and no bind: recv() would wait for ever.  The test releases it
    # afterwards by closing nothing it cannot reach: it shuts the socket down.
    socks = []

    def ask(server_path, data):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        socks.append(sock)
        sock.sendto(data, server_path)
        return sock.recv(65536)

    try:
        fails_with(lesson08.check_unix_datagram_client, ask,
                   words="bind the client's socket")
    finally:
        for sock in socks:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@UNIX
def test_client_that_reads_until_an_empty_datagram(short_bounds):
    # The TCP habit: read until b''.  On a datagram socket b'' never marks an end.
    owns = []

    def ask(server_path, data):
        folder = tempfile.mkdtemp()
        own = os.path.join(folder, "client.sock")
        owns.append(own)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.bind(own)
                sock.sendto(data, server_path)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
                return reply
        finally:
            os.unlink(own)
            os.rmdir(folder)

    try:
        fails_with(lesson08.check_unix_datagram_client, ask,
                   words="the server replied, but ask() was still waiting")
    finally:
        # An empty datagram is what this loop waits for: it releases both threads.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as releaser:
            for own in owns:
                releaser.sendto(b"", own)


@UNIX
def test_client_that_reads_until_an_empty_datagram_with_a_timeout(short_bounds):
    def ask(server_path, data):
        folder = tempfile.mkdtemp()
        own = os.path.join(folder, "client.sock")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.3)
                sock.bind(own)
                sock.sendto(data, server_path)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
                return reply
        finally:
            os.unlink(own)
            os.rmdir(folder)

    fails_with(lesson08.check_unix_datagram_client, ask,
               words="raised TimeoutError waiting for more: one recv() takes one whole datagram")


def test_client_placeholder():
    def ask(server_path, data):
        return ...

    fails_with(lesson08.check_unix_datagram_client, ask, words="fill in the ... in ask first")
