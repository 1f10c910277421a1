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
from sockserv.examples import chat, client, echo, engines

HOST = "127.0.0.1"
TIMEOUT = 5.0
#: A client still running this long after it should have ended is hung.
HANG = 5.0
#: The first output of a client just started: a new interpreter importing sockserv, which
#: took over 5 s on this 2-core machine with two test runs side by side (16 workers).
STARTUP = 30.0


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
        self._started = False   # has a line been read yet?

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

    def read_line(self, timeout=None):
        """The next line the client printed (the first within STARTUP, then within TIMEOUT)."""
        if timeout is None:
            timeout = TIMEOUT if self._started else STARTUP
        self._started = True
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            try:
                self._pending += self.chunks.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line within {timeout} s; got {self._pending!r}")
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8") + "\n"

    def wait(self, timeout=None):
        """The exit status; fails if the client hangs (HANG, or STARTUP if it printed nothing yet)."""
        if timeout is None:
            timeout = HANG if self._started else STARTUP
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


@pytest.mark.parametrize("impl", engines.NAMES)
def test_a_chat_session(impl):
    with running(engines.chat_server(impl, (HOST, 0))) as port, \
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


# -- on a terminal (a pseudo-terminal from the pty module) ------------------------------------

try:
    import pty  # noqa: F401 (only to know whether this platform has pseudo-terminals)
    HAVE_PTY = os.name == "posix"
except ImportError:
    HAVE_PTY = False

try:
    import prompt_toolkit  # noqa: F401
    EDITORS = ["prompt-toolkit"]
except ImportError:
    EDITORS = []
try:
    import readline  # noqa: F401
    EDITORS.append("readline")
except ImportError:
    pass

TERMINAL = pytest.mark.skipif(not HAVE_PTY, reason="needs a pseudo-terminal (POSIX)")


class PtyClient:

    """The client with a pseudo-terminal as its stdin, stdout and stderr, as a student has."""

    def __init__(self, port, ui):
        import select
        self._select = select.select
        self.master, slave = os.openpty()
        # NO_CPR: this test is not a terminal emulator and does not answer prompt_toolkit's
        # cursor position requests (a real terminal does).
        env = dict(os.environ, TERM="xterm", PYTHONFAULTHANDLER="1", PROMPT_TOOLKIT_NO_CPR="1")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sockserv", "client", "--ui", ui, HOST, str(port)],
                stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        finally:
            os.close(slave)
        self.screen = bytearray()
        self.seen = 0           # where the last read_until() match ended
        self._started = False   # has anything been read yet?

    def type(self, data):
        os.write(self.master, data)

    def wait_for_editor(self, timeout=TIMEOUT):
        """Wait until the client's line editor reads keys itself (the terminal is out of
        canonical mode), so that a control key typed now reaches the editor.

        Between two prompts the terminal is in its ordinary mode, where the terminal driver
        itself acts on Ctrl-C and Ctrl-D: a real terminal would signal the client or end
        its input, but this pty controls no process group, and the key would be lost.
        (tcgetattr() on the master side reports the terminal's, that is the slave's, mode.)
        """
        import termios
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.master)[3] & termios.ICANON:
            assert time.monotonic() < deadline, "the client's line editor never started"
            time.sleep(0.01)

    def read_until(self, wanted, timeout=None):
        """Read the terminal's output until wanted (bytes) appears after the last match;
        return the output from the start of the session.  The first wait is STARTUP long,
        the later ones TIMEOUT."""
        if timeout is None:
            timeout = TIMEOUT if self._started else STARTUP
        self._started = True
        deadline = time.monotonic() + timeout
        while (at := self.screen.find(wanted, self.seen)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"{wanted!r} not shown; screen: {bytes(self.screen)!r}"
            if self._select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:     # the client has exited and the pty is gone
                    chunk = b""
                assert chunk, f"{wanted!r} not shown; screen: {bytes(self.screen)!r}"
                self.screen += chunk
        self.seen = at + len(wanted)
        return bytes(self.screen)

    def finish(self):
        """Read the screen until the client has exited and closed the terminal; return the
        exit status."""
        deadline = time.monotonic() + 2 * HANG   # a terminal client starts slowly on a busy machine
        while (left := deadline - time.monotonic()) > 0:
            if not self._select([self.master], [], [], left)[0]:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:         # EIO: every copy of the terminal's other end is closed
                break
            if not chunk:
                break
            self.screen += chunk
        status = wait_or_dump(self.process, TIMEOUT, TIMEOUT)
        if status is None:
            # wait_or_dump() made it print its threads' stacks (faulthandler) on the terminal.
            with contextlib.suppress(OSError):
                while self._select([self.master], [], [], 1.0)[0] and \
                        (chunk := os.read(self.master, 65536)):
                    self.screen += chunk
            pytest.fail(f"the client hung; its terminal showed: {bytes(self.screen)!r}")
        return status

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        os.close(self.master)


@contextlib.contextmanager
def pty_client(port, ui):
    proc = PtyClient(port, ui)
    try:
        yield proc
    finally:
        proc.close()


def after_last(screen, marker):
    """What the terminal showed after the last occurrence of marker."""
    return screen[screen.rindex(marker) + len(marker):]


@TERMINAL
@pytest.mark.parametrize("ui", EDITORS)
def test_an_incoming_line_never_breaks_the_line_being_typed(ui):
    server = chat.make_server((HOST, 0), impl=sockserv)
    with running(server) as port, pty_client(port, ui) as proc:
        proc.read_until(b"* welcome guest1")
        proc.wait_for_editor()
        proc.type(b"half a li")
        proc.read_until(b"half a li")
        server.registry.announce("look: \x1b[2J")      # arrives while the line is typed
        proc.read_until(b"* teacher: look: \xe2\x90\x9b[2J")   # ESC shown as U+241B
        screen = proc.read_until(b"half a li")         # and the line is drawn again below
        assert b"\x1b[2J" not in after_last(screen, b"look: ")[:8]
        proc.type(b"ne\r")
        proc.read_until(b"guest1: half a line")
        proc.wait_for_editor()
        proc.type(b"\x1b[A\r")                          # up arrow: the last line, again
        proc.read_until(b"guest1: half a line")
        proc.wait_for_editor()
        proc.type(b"\x04")                              # Ctrl-D
        assert proc.finish() == 0
        screen = bytes(proc.screen)
        farewell = b"python -m sockserv client: end of input: disconnected\r\n"
        assert screen.endswith(farewell)
        before = screen[:-len(farewell)]
        # The farewell starts a line of its own (after a newline, or on a line just erased),
        # and ends with a newline: the shell's prompt comes on a line of its own too.
        assert before.endswith((b"\n", b"\r\x1b[K", b"\r\n\x1b[J\x1b[?7h\x1b[0m\x1b[?12l"
                                b"\x1b[?25h\x1b[?2004l")) or b"\r\n" in before[-40:]


@TERMINAL
@pytest.mark.parametrize("ui", EDITORS)
def test_on_a_terminal_the_server_closing_ends_with_one_line(ui):
    server = chat.make_server((HOST, 0), impl=sockserv)
    with running(server) as port, pty_client(port, ui) as proc:
        proc.read_until(b"* welcome guest1")
        proc.wait_for_editor()
        proc.type(b"typing")
        proc.read_until(b"typing")
        server.stop()
        proc.read_until(b"* server shutting down")
        assert proc.finish() == 0
        screen = bytes(proc.screen)
        farewell = f"python -m sockserv client: connection closed by {HOST}:{port}\r\n"
        assert after_last(screen, b"* server shutting down").endswith(farewell.encode())
        assert screen.count(b"connection closed") == 1


@TERMINAL
@pytest.mark.parametrize("ui", EDITORS)
def test_on_a_terminal_ctrl_c_ends_with_one_line(ui):
    with running(chat.make_server((HOST, 0), impl=sockserv)) as port, \
            pty_client(port, ui) as proc:
        proc.read_until(b"* welcome guest1")
        proc.wait_for_editor()
        proc.type(b"hello\r")
        proc.read_until(b"guest1: hello")
        proc.wait_for_editor()
        if ui == "prompt-toolkit":
            proc.type(b"\x03")                      # it reads keys itself: Ctrl-C is a key
        else:
            # The terminal turns Ctrl-C into SIGINT for the process group it controls; this
            # pty controls none, so send what it would.
            proc.process.send_signal(signal.SIGINT)
        assert proc.finish() == 0
        assert bytes(proc.screen).endswith(
            b"python -m sockserv client: interrupted: disconnected\r\n")


@TERMINAL
def test_plain_ui_on_a_terminal_still_shows_control_characters_visibly():
    def script(conn, finished):
        conn.sendall(b"\x1b[31mred\x07\r\n")

    with scripted_server(script) as port, pty_client(port, "plain") as proc:
        proc.read_until(b"\xe2\x90\x9b[31mred\xe2\x90\x87")     # ESC and BEL shown, not obeyed
        assert proc.finish() == 0
        assert bytes(proc.screen).endswith(
            f"python -m sockserv client: connection closed by {HOST}:{port}\r\n".encode())


# -- pieces, in process ---------------------------------------------------------------------


@pytest.mark.skipif("readline" not in EDITORS, reason="no readline here")
@pytest.mark.parametrize("input_saw_it", [False, True])
def test_a_sigint_that_input_missed_is_sent_again_until_input_ends(monkeypatch, input_saw_it):
    """The readline editor's watcher: a SIGINT while input() runs is repeated, every
    RESIGNAL_AFTER seconds, until that input() ends (CPython's readline can miss one that
    lands just before it waits); one that input() acted on is never repeated."""
    from sockserv.examples import client_tty
    monkeypatch.setattr(client_tty, "RESIGNAL_AFTER", 0.05)
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        editor = client_tty.ReadlineEditor()
        with editor:
            with editor._lock:          # as read_line() does when it calls input()
                editor._reading, editor._reads = True, 1
            signal.raise_signal(signal.SIGINT)
            if input_saw_it:            # input() ended at once, as it does when it sees it
                with editor._lock:
                    editor._reading = False
            deadline = time.monotonic() + 5
            while len(received) < 3 and not input_saw_it and time.monotonic() < deadline:
                time.sleep(0.01)        # a signal handler runs here, in the main thread
            with editor._lock:
                editor._reading = False  # that input() ends
            time.sleep(0.2)             # four periods: nothing more may come
            count = len(received)
            time.sleep(0.2)
            assert len(received) == count
    finally:
        signal.signal(signal.SIGINT, previous)
    assert received == [signal.SIGINT] * (1 if input_saw_it else count)
    assert input_saw_it or count >= 3


def test_control_characters_are_made_visible_and_crlf_is_a_line_end():
    from sockserv.examples.visible import VisibleText, visible
    assert visible("a\x1b[2Jb\rc\r\nd\x7f\x9b\u202e\t\x00\n") == \
        "a\u241b[2Jb\u240dc\nd\u2421\\x9b\\u202e\u2409\u2400\n"
    shown = VisibleText()
    assert shown.feed("x\r") + shown.feed("\ny\r") + shown.final() == "x\ny\u240d"


def test_without_prompt_toolkit_the_client_uses_readline_or_stays_plain(monkeypatch, capsys):
    from sockserv.examples import client_tty
    monkeypatch.setitem(sys.modules, "prompt_toolkit", None)    # import fails: not installed
    assert client_tty.line_editor("prompt-toolkit") is None
    assert "prompt_toolkit is not installed" in capsys.readouterr().err
    editor = client_tty.line_editor("auto")
    if "readline" in EDITORS:
        assert isinstance(editor, client_tty.ReadlineEditor)
    else:
        assert editor is None
    monkeypatch.setitem(sys.modules, "readline", None)
    assert client_tty.line_editor("auto") is None


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_the_receiver_thread_leaves_ctrl_c_to_the_main_thread():
    """SIGINT blocked in the receiver: a Ctrl-C taken there would never wake input().

    (The hang this prevents: readline blocks SIGINT while it draws the prompt, the kernel
    then hands the signal to the receiver, and the main thread waits in input() forever.)
    """
    from sockserv.examples.client_tty import TtySession

    class RecordingEditor:
        def __init__(self):
            self.masks = []

        def show(self, line):
            self.masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

        def wake(self):
            pass

    ours, theirs = socket.socketpair()
    editor = RecordingEditor()
    session = TtySession(ours, editor)
    receiver = threading.Thread(target=session.receive)
    with ours, theirs:
        receiver.start()
        theirs.sendall(b"one line\n")
        theirs.shutdown(socket.SHUT_WR)
        receiver.join(TIMEOUT)
    assert not receiver.is_alive()
    assert editor.masks and all(signal.SIGINT in mask for mask in editor.masks)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # ours unchanged
