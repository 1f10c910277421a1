"""The `python -m sockserv` command line, run as a real subprocess.

A server under test is started with --port 0; the test reads the `listening on HOST:PORT` line
from its stdout (with a timeout), talks to it over 127.0.0.1, signals it, and checks the exit
status.  Every process is killed in a `finally` if it is still running, so nothing outlives a
test.  Stop times are measured and printed (run with -s to see them), never asserted: the
only bound asserted is HANG, which means "it hung".

Option parsing, --help and the docs check run in process, through cli.main() and
cli.build_parser(), because they need no sockets and a subprocess each would be slow.
"""

import argparse
import contextlib
import importlib.metadata
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from subprocesses import end, wait_or_dump

from sockserv.examples import cli, engines

HOST = "127.0.0.1"
TIMEOUT = 5.0
#: A server that has not exited this long after a signal is hung.
HANG = 5.0
#: The first output of a command just started: a new interpreter importing sockserv, which
#: took over 5 s on this 2-core machine with two test runs side by side (16 workers).
STARTUP = 30.0
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "command-line.md"
#: Every engine (engines.NAMES, the one list).
IMPLS = list(engines.NAMES)
POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
_FORKING = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
#: (impl, mode): each threaded engine in each --mode, and asyncio, which takes no --mode.
ENGINE_MODES = [pytest.param(name, mode, marks=[_FORKING] if mode == "forking" else [],
                             id=f"{name}-{mode}")
                for name in engines.THREADED for mode in ("sync", "threading", "forking")]
ENGINE_MODES += [pytest.param(name, None, id=name) for name in engines.NAMES
                 if name not in engines.THREADED]
LISTENING = re.compile(r"listening on (\S+):(\d+)")


class Command:

    """`python -m sockserv ARGS` as a subprocess, with its output read by two threads."""

    def __init__(self, *args, stdin=subprocess.DEVNULL):
        # PYTHONFAULTHANDLER: if a command hangs, wait() makes it print every thread's stack.
        env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONFAULTHANDLER="1")
        # -W: a socket left unclosed by the command line would show on stderr.
        self.process = subprocess.Popen(
            [sys.executable, "-W", "always::ResourceWarning", "-m", "sockserv", *args],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            encoding="utf-8", errors="replace", env=env)
        self.stdout = queue.Queue()
        self.stderr_lines = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout.put)),
            threading.Thread(target=self._pump,
                             args=(self.process.stderr, self.stderr_lines.append)),
        ]
        for reader in self._readers:
            reader.start()
        self._heard = False     # has a line been read yet (so the interpreter is up)?

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)

    def line(self, timeout=None):
        """The next stdout line; fails after timeout (the first: STARTUP, then TIMEOUT)."""
        if timeout is None:
            timeout = TIMEOUT if self._heard else STARTUP
        try:
            line = self.stdout.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout} s; stderr: {self.stderr}")
        self._heard = True
        return line

    def listening(self):
        """Wait for the `listening on` line; return the port it names."""
        line = self.line()
        match = LISTENING.search(line)
        assert match, f"not a listening line: {line!r}; stderr: {self.stderr}"
        return int(match.group(2))

    def signal(self, signum):
        """Send signum; return (exit status, seconds until exit)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        status = self.wait()
        return status, time.monotonic() - started

    def wait(self, timeout=None):
        """Wait for the exit status; fails if the process hangs (HANG, or STARTUP if
        nothing has been read from it yet: it may still be starting)."""
        if timeout is None:
            timeout = HANG if self._heard else STARTUP
        deadline = time.monotonic() + timeout
        # Its pipes reach end of file as it exits, and their readers end at once then;
        # Popen.wait(timeout) alone would poll, in steps of up to 50 ms.  Whatever holds
        # a pipe open longer, the one bound is still timeout.
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        status = wait_or_dump(self.process, max(0.0, deadline - time.monotonic()), TIMEOUT)
        if status is None:
            self.close()
            pytest.fail(f"still running {timeout} s later; stderr: {self.stderr}")
        return status

    @property
    def stderr(self):
        """What the process wrote on stderr (complete once it has exited and close() ran)."""
        return "".join(self.stderr_lines)

    def close(self):
        """Kill the process if it still runs; reap it; join the readers; close the pipes."""
        end(self.process, self._readers, TIMEOUT)


@contextlib.contextmanager
def command(*args, **kwargs):
    """Run a Command; always close() it."""
    cmd = Command(*args, **kwargs)
    try:
        yield cmd
    finally:
        cmd.close()


def connect(port):
    return socket.create_connection((HOST, port), timeout=TIMEOUT)


def read_lines(sock, count):
    """Read `count` lines from a chat connection."""
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data.decode().splitlines()


def read_to_eof(sock):
    """All that arrives until the server closes (a reset counts as closed)."""
    chunks = []
    try:
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def assert_clean(cmd):
    """No traceback and no unclosed-socket warning on stderr."""
    cmd.close()
    assert "Traceback" not in cmd.stderr
    assert "ResourceWarning" not in cmd.stderr


def echo_round_trip(port, payload=b"hello \x00\xff\n"):
    with connect(port) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == payload


# -- servers: start, talk, stop on a signal --------------------------------------------


@POSIX_ONLY
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize(("impl", "mode"), ENGINE_MODES)
def test_echo_stops_on_signal_with_clients_connected(impl, mode, signum):
    mode_option = ["--mode", mode] if mode else []
    with command("echo", "--port", "0", "--impl", impl, *mode_option) as cmd:
        port = cmd.listening()
        echo_round_trip(port)
        with connect(port) as busy, connect(port) as idle:
            busy.sendall(b"still here")
            assert busy.recv(100) == b"still here"      # its handler is running
            status, took = cmd.signal(signum)
            print(f"echo {impl} {mode}: exit {status} {took:.3f} s after {signum.name}")
            assert status == 0
            # Every connection is closed by then (sync mode: idle was never accepted).
            assert read_to_eof(busy) == b""
            assert read_to_eof(idle) == b""
        assert_clean(cmd)


@POSIX_ONLY
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_echo_forking_leaves_no_child_behind():
    with command("echo", "--port", "0", "--mode", "forking") as cmd:
        port = cmd.listening()
        clients = [connect(port) for _ in range(3)]
        try:
            for client in clients:
                client.sendall(b"x")
                assert client.recv(1) == b"x"           # each has its own child now
            children = _children_of(cmd.process.pid)
            assert len(children) == 3
            status, took = cmd.signal(signal.SIGTERM)
            print(f"echo forking with 3 children: exit {status} {took:.3f} s")
            assert status == 0
            # Reaped by the server before it exited: no zombie, no orphan.
            for pid in children:
                assert not os.path.exists(f"/proc/{pid}")
        finally:
            for client in clients:
                client.close()
        assert_clean(cmd)


def _children_of(pid):
    children = set()
    for path in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        children.update(int(child) for child in path.read_text().split())
    return children


@POSIX_ONLY
@pytest.mark.parametrize("impl", IMPLS)
def test_echo_udp(impl):
    with command("echo", "--udp", "--port", "0", "--impl", impl) as cmd:
        port = cmd.listening()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(b"\x00datagram\xff", (HOST, port))
            assert sock.recvfrom(100)[0] == b"\x00datagram\xff"
        status, took = cmd.signal(signal.SIGTERM)
        assert status == 0
        assert_clean(cmd)


@POSIX_ONLY
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("impl", IMPLS)
def test_chat_tells_clients_and_stops_on_signal(impl, signum):
    with command("chat", "--port", "0", "--impl", impl) as cmd:
        port = cmd.listening()
        with connect(port) as alice, connect(port) as bob:
            assert read_lines(alice, 1)[0].startswith("* welcome ")
            assert read_lines(bob, 1)[0].startswith("* welcome ")
            status, took = cmd.signal(signum)
            print(f"chat {impl}: exit {status} {took:.3f} s after {signum.name}")
            assert status == 0
            for sock in (alice, bob):
                lines = read_to_eof(sock).decode().splitlines()
                assert lines[-1:] == ["* server shutting down"]
        assert_clean(cmd)


@POSIX_ONLY
@pytest.mark.parametrize("what", ["echo", "chat"])
def test_a_second_signal_during_stop_is_harmless(what):
    with command(what, "--port", "0") as cmd:
        port = cmd.listening()
        with connect(port):
            cmd.process.send_signal(signal.SIGTERM)
            cmd.process.send_signal(signal.SIGINT)
            assert cmd.wait() == 0
        assert_clean(cmd)


@POSIX_ONLY
@pytest.mark.parametrize("what", ["echo", "chat"])
def test_signal_while_clients_are_connecting(what):
    with command(what, "--port", "0") as cmd:
        port = cmd.listening()
        done = threading.Event()
        connected = []
        hammer = threading.Thread(target=_keep_connecting, args=(port, done, connected))
        hammer.start()
        try:
            # Let connections pour in: wait until some have got through, not for a set time.
            deadline = time.monotonic() + TIMEOUT
            while len(connected) < 10 and time.monotonic() < deadline and hammer.is_alive():
                time.sleep(0.01)
            assert len(connected) >= 10, f"{len(connected)} connections; stderr: {cmd.stderr}"
            status, took = cmd.signal(signal.SIGTERM)
            print(f"{what}: exit {status} {took:.3f} s while clients were connecting")
            assert status == 0
        finally:
            done.set()
            hammer.join(TIMEOUT)
        assert_clean(cmd)


def _keep_connecting(port, done, connected):
    """Connect and close again and again until done; append to connected each time it worked."""
    while not done.is_set():
        try:
            # Short: a connection attempt the stopping server leaves unanswered (its SYN
            # dropped, the next try a second later) is given up, not waited for; the test
            # asserts nothing about any one attempt, and joins this thread once done.
            with socket.create_connection((HOST, port), timeout=0.2):
                connected.append(True)
        except OSError:             # refused, or unanswered, once the server stops: expected
            pass


@pytest.mark.parametrize("what", ["echo", "chat"])
def test_thirty_clients_in_the_same_second_are_all_served(what):
    with command(what, "--port", "0") as cmd:
        port = cmd.listening()
        start = threading.Barrier(30, timeout=TIMEOUT)
        results = []

        def student():
            start.wait()
            try:
                with connect(port) as sock:
                    if what == "echo":
                        sock.sendall(b"hi\n")
                        results.append(sock.recv(10) == b"hi\n")
                    else:
                        results.append(read_lines(sock, 1)[0].startswith("* welcome "))
            except OSError as exc:
                results.append(exc)

        students = [threading.Thread(target=student) for _ in range(30)]
        started = time.monotonic()
        for thread in students:
            thread.start()
        for thread in students:
            thread.join(2 * TIMEOUT)
        print(f"{what}: 30 clients served in {time.monotonic() - started:.3f} s")
        assert results == [True] * 30
        if os.name == "posix":
            assert cmd.signal(signal.SIGTERM)[0] == 0
        assert_clean(cmd)


# -- servers: what they print ------------------------------------------------------------


def test_listening_line_names_the_real_port_and_nothing_else_is_printed():
    with command("echo", "--port", "0", "--impl", "stdlib") as cmd:
        line = cmd.line()
        host, port = LISTENING.search(line).groups()
        assert host == HOST
        echo_round_trip(int(port))
        if os.name == "posix":
            assert cmd.signal(signal.SIGINT)[0] == 0
        cmd.close()
        assert cmd.stdout.empty()           # one line on stdout, no more
        assert cmd.stderr == ""             # quiet by default, no warning on loopback


@POSIX_ONLY
def test_verbose_logs_connections_on_stderr():
    with command("echo", "--port", "0", "-v") as cmd:
        echo_round_trip(cmd.listening())
        assert cmd.signal(signal.SIGTERM)[0] == 0
        assert_clean(cmd)
        assert "connected" in cmd.stderr and "left" in cmd.stderr


@pytest.mark.parametrize("what", ["echo", "chat"])
def test_all_interfaces_warns_that_anyone_can_connect(what):
    # Binds every interface for a moment; the test itself talks over 127.0.0.1 only.
    with command(what, "--host", "0.0.0.0", "--port", "0") as cmd:
        port = cmd.listening()
        with connect(port):
            pass
        if os.name == "posix":
            assert cmd.signal(signal.SIGTERM)[0] == 0
        cmd.close()
        warnings = [line for line in cmd.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "anyone" in warnings[0]
        assert "no authentication" in warnings[0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("what", [["echo"], ["echo", "--udp"], ["chat"]], ids=" ".join)
def test_port_in_use_is_one_line_naming_the_port(what, impl):
    args = [*what, "--impl", impl]
    kind = socket.SOCK_DGRAM if "--udp" in args else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((HOST, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        with command(*args, "--port", str(port)) as cmd:
            assert cmd.wait() == 1
            cmd.close()
    lines = cmd.stderr.splitlines()
    assert len(lines) == 1, cmd.stderr
    assert str(port) in lines[0] and "in use" in lines[0]
    assert cmd.stdout.empty()


@pytest.mark.parametrize("impl", IMPLS)
def test_an_address_this_machine_lacks_is_one_line(impl):
    # 192.0.2.1 is reserved for documentation: no machine has it, and no DNS is involved.
    with command("echo", "--host", "192.0.2.1", "--port", "0", "--impl", impl) as cmd:
        assert cmd.wait() == 1
        cmd.close()
    assert len(cmd.stderr.splitlines()) == 1
    assert "192.0.2.1" in cmd.stderr and "error" in cmd.stderr


def test_a_bad_option_is_one_line_and_status_2():
    with command("echo", "--port", "99999") as cmd:
        assert cmd.wait() == 2
        cmd.close()
    assert cmd.stderr.count("\n") == 1
    assert cmd.stderr.startswith("python -m sockserv echo: error: ")
    assert "--help" in cmd.stderr


# -- option parsing, in process -------------------------------------------------------------


BAD_OPTIONS = [
    [],
    ["serve"],
    ["echo", "--port", "65536"],
    ["echo", "--port", "-1"],
    ["echo", "--port", "http"],
    ["echo", "--mode", "async"],
    ["echo", "--impl", "twisted"],
    ["echo", "--impl", "asyncio", "--mode", "sync"],
    ["echo", "--impl", "asyncio", "--mode", "threading"],
    ["echo", "--bogus"],
    ["echo", "extra"],
    ["chat", "--max-line", "0"],
    ["chat", "--max-line", "1.5"],
    ["chat", "--idle-timeout", "0"],
    ["chat", "--idle-timeout", "-3"],
    ["chat", "--idle-timeout", "nan"],
    ["chat", "--idle-timeout", "inf"],
    ["chat", "--mode", "forking"],
    ["chat", "--max-clients", "0"],
    ["chat", "--rate", "-1"],
    ["chat", "--rate", "fast"],
    ["chat", "--rate", "inf"],
    ["chat", "--burst", "0"],
    ["chat", "--console", "yes"],
    ["client"],
    ["client", "127.0.0.1"],
    ["client", "127.0.0.1", "0"],
    ["client", "127.0.0.1", "port"],
    ["client", "127.0.0.1", "9999", "more"],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=" ".join)
def test_bad_options_give_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert re.match(r"sockserv( \w+)?: error: .+ \(see 'sockserv( \w+)? --help'\)$", err)


def test_good_values_at_the_limits_are_accepted():
    parser = cli.build_parser()
    args = parser.parse_args(["chat", "--port", "65535", "--max-line", "1",
                              "--idle-timeout", "0.5", "--impl", "stdlib", "-vv"])
    assert (args.port, args.max_line, args.idle_timeout, args.verbose) == (65535, 1, 0.5, 2)
    args = parser.parse_args(["echo"])
    assert (args.host, args.port, args.impl, args.mode, args.udp) == (
        "127.0.0.1", 9998, "sockserv", None, False)     # None: threading, or asyncio's loop
    args = parser.parse_args(["chat"])
    assert (args.host, args.port, args.max_line, args.idle_timeout) == (
        "127.0.0.1", 9999, 4096, 300.0)
    assert (args.max_clients, args.rate, args.burst, args.console) == (500, 10.0, 30, None)
    args = parser.parse_args(["chat", "--rate", "0", "--burst", "1", "--max-clients", "1",
                              "--no-console"])
    assert (args.rate, args.burst, args.max_clients, args.console) == (0.0, 1, 1, False)


def _commands():
    """{name: subparser} for every subcommand."""
    return cli.build_parser().command_parsers


def _options(subparser):
    """Every option string and positional metavar of a subcommand, with its action."""
    for action in subparser._actions:
        names = action.option_strings or [action.metavar or action.dest]
        yield names, action


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_explains_every_option(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for names, action in _options(_commands()[name]):
        assert action.help, f"{names} has no help text"
        for option in names:
            assert option in help_text


def test_the_docs_page_names_every_command_and_option():
    page = DOCS.read_text(encoding="utf-8")
    for name, subparser in _commands().items():
        assert f"python -m sockserv {name}" in page
        for names, action in _options(subparser):
            for option in names:
                assert f"`{option}" in page, f"docs/command-line.md lacks {name} {option}"
            if action.option_strings and action.default not in (None, False, 0,
                                                                 argparse.SUPPRESS):
                default = str(action.default).removesuffix(".0")
                assert f"`{default}`" in page, f"docs lack {name} {names[0]}'s default"


def test_the_sockserv_script_runs_the_same_main():
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="sockserv")
    assert script.load() is cli.main


# -- --version, the console ------------------------------------------------------------------


@pytest.mark.parametrize("argv, prog", [(["--version"], "sockserv")])
def test_version_prints_the_package_version(argv, prog, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"{prog} {importlib.metadata.version('sockserv')}\n"


def test_python_m_sockserv_version():
    with command("--version") as cmd:
        assert cmd.wait() == 0
        assert cmd.line() == f"python -m sockserv {importlib.metadata.version('sockserv')}\n"


def test_the_chat_server_reuses_addresses_only_where_that_is_safe():
    from sockserv.examples import chat
    server_class, _ = chat.chat_classes(importlib.import_module("socketserver"))
    assert server_class.allow_reuse_address is (os.name == "posix")


@POSIX_ONLY
@pytest.mark.parametrize("impl", IMPLS)
def test_the_console_who_say_kick_and_end_of_input(impl):
    with command("chat", "--port", "0", "--impl", impl, "--console",
                 stdin=subprocess.PIPE) as cmd:
        port = cmd.listening()
        console = cmd.process.stdin
        with contextlib.ExitStack() as sockets:
            alice = sockets.enter_context(connect(port))
            assert read_lines(alice, 1) == ["* welcome guest1"]
            bob = sockets.enter_context(connect(port))
            assert read_lines(bob, 1) == ["* welcome guest2"]
            assert read_lines(alice, 1) == ["* guest2 joined"]
            console.write("who\nsay hello, class\nkick guest2\nfrobnicate\n")
            console.flush()
            assert cmd.line() == "users (2): guest1, guest2\n"
            assert cmd.line() == "guest2 removed\n"
            assert cmd.line().startswith("unknown command 'frobnicate'; commands: ")
            assert read_lines(alice, 2) == ["* teacher: hello, class", "* guest2 left"]
            assert read_to_eof(bob).decode().splitlines() == [
                "* teacher: hello, class", "* you have been removed"]
            console.close()                 # end of input: the console ends, not the server
            assert cmd.line() == ("console: end of input; the server keeps running "
                                  "(Ctrl-C stops it)\n")
            with connect(port) as carol:
                assert read_lines(carol, 1) == ["* welcome guest3"]
            status, _ = cmd.signal(signal.SIGTERM)
            assert status == 0
            assert read_to_eof(alice).decode().splitlines()[-1] == "* server shutting down"
        assert_clean(cmd)


@POSIX_ONLY
def test_the_console_quit_stops_the_server_like_ctrl_c():
    with command("chat", "--port", "0", "--console", stdin=subprocess.PIPE) as cmd:
        port = cmd.listening()
        with connect(port) as alice:
            assert read_lines(alice, 1) == ["* welcome guest1"]
            cmd.process.stdin.write("quit\n")
            cmd.process.stdin.flush()
            assert cmd.wait() == 0
            assert read_to_eof(alice).decode().splitlines() == ["* server shutting down"]
        assert_clean(cmd)


@POSIX_ONLY
def test_the_console_is_on_by_default_when_stdin_is_a_terminal():
    master, slave = os.openpty()
    try:
        with command("chat", "--port", "0", stdin=slave) as cmd:
            os.close(slave)
            slave = None
            line = cmd.line()
            assert "impl sockserv; console on: type help); press Ctrl-C" in line
            os.write(master, b"who\n")
            assert cmd.line() == "users (0): nobody\n"
            status, _ = cmd.signal(signal.SIGTERM)
            assert status == 0
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def test_no_console_when_stdin_is_not_a_terminal():
    with command("chat", "--port", "0") as cmd:      # stdin is /dev/null
        line = cmd.line()
        assert "console" not in line
