"""`python -m sockserv client HOST PORT`, driven through its stdin and stdout.

The client runs as a subprocess, as a student would run it; the servers it talks to run in
this process (the course's echo and chat servers, or a scripted one-connection server when a
test needs the server to misbehave in a precise way).  Every process is killed in a `finally`
if still running; every wait is bounded.
"""

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from subprocesses import end, wait_or_dump

import sockserv
from sockserv.examples import chat, client, echo

HOST = "127.0.0.1"
TIMEOUT = 5.0
#: A client still running this long after it should have ended is hung.
HANG = 5.0


@contextlib.contextmanager
def running(server):
    """Serve in a thread; stop() the server on the way out."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.stop()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


@contextlib.contextmanager
def scripted_server(script):
    """A server for one connection: script(conn) runs in a thread, then conn is closed."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(TIMEOUT)
    finished = threading.Event()

    def serve_one():
        try:
            conn, _ = listener.accept()
        except OSError:             # nobody came (the test failed earlier)
            return
        with conn:
            conn.settimeout(TIMEOUT)
            script(conn, finished)

    thread = threading.Thread(target=serve_one)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        finished.set()
        thread.join(2 * TIMEOUT)
        listener.close()
        assert not thread.is_alive()


class Client:

    """The client as a subprocess with a pipe on each of stdin, stdout and stderr."""

    def __init__(self, *args):
        # PYTHONFAULTHANDLER: if a client hangs, wait() makes it print every thread's stack.
        env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONFAULTHANDLER="1")
        self.process = subprocess.Popen(
            [sys.executable, "-W", "always::ResourceWarning", "-m", "sockserv", "client",
             *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.chunks = queue.Queue()
        self.err = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.chunks.put)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.err.append)),
        ]
        for reader in self._readers:
            reader.start()
        self._pending = b""

    @staticmethod
    def _pump(stream, put):
        while chunk := stream.read1(4096):
            put(chunk)

    def type(self, text):
        """Send text to the client's stdin, as if typed."""
        self.process.stdin.write(text.encode("utf-8"))
        self.process.stdin.flush()

    def end_input(self):
        """Close the client's stdin: end of input, as Ctrl-D."""
        self.process.stdin.close()

    def read_line(self, timeout=TIMEOUT):
        """The next line the client printed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            try:
                self._pending += self.chunks.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line within {timeout} s; got {self._pending!r}")
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8") + "\n"

    def wait(self, timeout=HANG):
        """The exit status; fails if the client hangs."""
        status = wait_or_dump(self.process, timeout, TIMEOUT)
        if status is None:
            self.close()
            pytest.fail(f"client still running {timeout} s later; stderr: {self.stderr}")
        return status

    def output(self):
        """All stdout not yet read, once the client has exited."""
        self.close()
        rest = self._pending
        while not self.chunks.empty():
            rest += self.chunks.get_nowait()
        return rest.decode("utf-8")

    @property
    def stderr(self):
        return b"".join(self.err).decode("utf-8", "replace")

    def close(self):
        """Kill the client if it still runs, reap it, join the readers, close the pipes."""
        end(self.process, self._readers, TIMEOUT)


@contextlib.contextmanager
def client_process(port):
    proc = Client(HOST, str(port))
    try:
        yield proc
    finally:
        proc.close()


def assert_clean(proc):
    proc.close()
    assert "Traceback" not in proc.stderr
    assert "ResourceWarning" not in proc.stderr


def echo_server():
    return running(echo.make_server((HOST, 0), impl=sockserv))


# -- with the echo server ---------------------------------------------------------------


def test_piped_input_is_sent_and_the_echo_printed_then_exit_0():
    with echo_server() as port, client_process(port) as proc:
        proc.type("hello\nwörld\n")
        proc.end_input()
        started = time.monotonic()
        assert proc.wait() == 0
        print(f"client exited {time.monotonic() - started:.3f} s after end of input")
        assert proc.output() == "hello\nwörld\n"
        assert_clean(proc)


def test_each_line_comes_back_as_it_is_typed():
    with echo_server() as port, client_process(port) as proc:
        proc.type("one\n")
        assert proc.read_line() == "one\n"
        proc.type("two\n")
        assert proc.read_line() == "two\n"
        proc.end_input()
        assert proc.wait() == 0
        assert proc.output() == ""
        assert_clean(proc)


def test_exits_when_the_server_stops_while_input_is_still_open():
    server = echo.make_server((HOST, 0), impl=sockserv)
    with running(server) as port, client_process(port) as proc:
        proc.type("ping\n")
        assert proc.read_line() == "ping\n"
        server.stop()                               # stdin stays open
        assert proc.wait() == 0
        assert_clean(proc)
        assert "closed" in proc.stderr


# -- with scripted servers ----------------------------------------------------------------


def test_invalid_utf8_is_printed_with_replacement_characters():
    def script(conn, finished):
        conn.sendall(b"caf\xc3")                    # a character split over two sends
        time.sleep(0.05)
        conn.sendall(b"\xa9 \xff\xfe ok\n")

    with scripted_server(script) as port, client_process(port) as proc:
        assert proc.wait() == 0
        assert proc.output() == "café \ufffd\ufffd ok\n"
        assert_clean(proc)


def test_gives_up_on_a_server_that_ignores_end_of_input():
    def script(conn, finished):
        conn.sendall(b"I never close\n")
        finished.wait(2 * TIMEOUT)                  # until the test is over

    with scripted_server(script) as port, client_process(port) as proc:
        assert proc.read_line() == "I never close\n"
        proc.end_input()
        started = time.monotonic()
        assert proc.wait() == 0
        print(f"client gave up {time.monotonic() - started:.3f} s after end of input "
              f"(quiet period {client.QUIET_AFTER_EOF} s)")
        assert_clean(proc)


def test_sends_exactly_the_bytes_typed():
    received = []

    def script(conn, finished):
        while data := conn.recv(4096):
            received.append(data)

    with scripted_server(script) as port, client_process(port) as proc:
        proc.type("line one\r\nno newline at the end")
        proc.end_input()
        assert proc.wait() == 0
        assert_clean(proc)
    assert b"".join(received) == b"line one\r\nno newline at the end"


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_ends_the_client_with_status_0():
    with echo_server() as port, client_process(port) as proc:
        proc.type("hi\n")
        assert proc.read_line() == "hi\n"           # connected and running
        proc.process.send_signal(signal.SIGINT)
        assert proc.wait() == 0
        assert_clean(proc)


# -- with the chat server -------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["stdlib", "sockserv"])
def test_a_chat_session(impl):
    module = __import__("socketserver") if impl == "stdlib" else sockserv
    with running(chat.make_server((HOST, 0), impl=module)) as port, \
            client_process(port) as proc:
        welcome = proc.read_line()
        assert welcome.startswith("* welcome ")
        name = welcome.split()[-1]
        proc.type("hello, class\n")
        assert proc.read_line() == f"{name}: hello, class\n"
        proc.type("/quit\n")
        assert proc.wait() == 0                     # the server closed: the client ends
        assert_clean(proc)


def test_end_of_input_ends_a_chat_session_promptly():
    with running(chat.make_server((HOST, 0), impl=sockserv)) as port, \
            client_process(port) as proc:
        assert proc.read_line().startswith("* welcome ")
        proc.end_input()
        started = time.monotonic()
        assert proc.wait() == 0
        print(f"chat client exited {time.monotonic() - started:.3f} s after end of input")
        assert_clean(proc)


# -- failures to connect --------------------------------------------------------------------


def test_connection_refused_is_one_line_and_status_1():
    # A bound socket that does not listen: connecting to its port is refused, and no other
    # program can take the port while the test runs.
    with socket.socket() as closed:
        closed.bind((HOST, 0))
        port = closed.getsockname()[1]
        with client_process(port) as proc:
            assert proc.wait() == 1
            proc.close()
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("python -m sockserv client: error: cannot connect to ")
    assert str(port) in proc.stderr
    assert proc.output() == ""


def test_unknown_host_is_one_line_and_status_1(monkeypatch, capsys):
    # Name resolution is faked: the test must not depend on this machine's DNS.
    def no_such_host(address, timeout):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(client.socket, "create_connection", no_such_host)
    assert client.run("no-such-host.invalid", 9999) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("sockserv client: error: cannot connect to no-such-host.invalid:9999: "
                   "Name or service not known\n")
