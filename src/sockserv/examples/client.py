"""A line client for the course's servers, the same on Linux, macOS and Windows.

`nc` and `telnet` do this job on Linux and macOS, but a Windows laptop usually has neither, so
the course ships its own: `python -m sockserv client HOST PORT`.  What you type is sent, what
arrives is printed as soon as it arrives, and the client ends cleanly when either side is done.

Doing two things at once (wait for the keyboard, wait for the network) is usually a job for
select(), but on Windows select() accepts sockets only, never the console.  So each wait gets
its own thread, and the main thread only decides when the session is over:

    keyboard thread   reads stdin, sends it; at EOF shuts down the write side of the socket
    receiver thread   recv()s, decodes UTF-8 (bad bytes become U+FFFD), makes control
                      characters visible (sockserv.examples.visible), prints, flushes
    main thread       waits for the server to close, for EOF, or for Ctrl-C, then tidies up

That is the plain client, used when stdin is not a terminal (a pipe, a file) or with --ui
plain.  On a terminal the client edits the line being typed itself (client_tty): incoming lines
are printed above it and the line is redrawn, arrow keys edit and recall history.  It uses
prompt_toolkit if it is installed, else the standard library's readline (Linux, macOS), else
it stays plain.

A read from the console cannot be interrupted on every platform, so the keyboard thread is a
daemon: when the server closes the connection the client exits even though that read is still
pending.  It reads the unbuffered raw stream, so it never holds a lock that the interpreter
needs while it exits.

After EOF on stdin (Ctrl-D; Ctrl-Z then Enter on Windows; the end of a piped file) the client
half-closes the connection and keeps printing until the server closes it, so that `echo hi |
client` shows the echo.  A server that ignores the half-close does not keep it waiting long:
it gives up once nothing has arrived for QUIET_AFTER_EOF seconds, and in any case after
MAX_WAIT_AFTER_EOF seconds.
"""

import codecs
import io
import signal
import socket
import sys
import threading
import time

from .visible import VisibleText

__all__ = ["UIS", "Session", "connect", "run"]

#: --ui choices.
UIS = ("auto", "prompt-toolkit", "readline", "plain")

#: Seconds to wait for a server to answer a connection attempt.
CONNECT_TIMEOUT = 10.0
#: After EOF on stdin, give up once nothing has arrived for this many seconds...
QUIET_AFTER_EOF = 1.0
#: ... and in any case after this many.
MAX_WAIT_AFTER_EOF = 10.0


def connect(host, port, timeout=CONNECT_TIMEOUT):
    """Return a blocking socket connected to (host, port); raises OSError on failure."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(None)
    return sock


class Session:

    """One conversation between a keyboard, a screen and a connected socket.

    Methods for the caller:

    - run()         start both threads, wait until the session is over, tidy up.  Returns
                    the reason it ended: "server closed", "end of input" or "interrupted".

    Methods run in threads by run():

    - receive()     socket -> screen, until EOF or an error.
    - transmit()    keyboard -> socket, until EOF; then shuts down the write side.

    `keyboard` is a binary stream whose read(n) returns what is available (a raw stream, as
    sys.stdin.buffer.raw); `screen` is a text stream.
    """

    bufsize = 65536

    def __init__(self, sock, keyboard, screen):
        self.sock = sock
        self.keyboard = keyboard
        self.screen = screen
        self.server_closed = threading.Event()
        self.input_ended = threading.Event()
        self.last_arrival = time.monotonic()
        self.at_line_start = True   # nothing printed, or the last thing printed ended a line

    def receive(self):
        """Print everything the server sends, as it arrives."""
        # Incremental, so a character split across two recv() calls is not mangled.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        shown = VisibleText()
        try:
            while True:
                data = self.sock.recv(self.bufsize)
                if not data:
                    break
                self.last_arrival = time.monotonic()
                self._show(shown.feed(decoder.decode(data)))
            self._show(shown.feed(decoder.decode(b"", final=True)) + shown.final())
        except OSError:         # reset, cut by run(), or the screen went away
            pass
        finally:
            self.server_closed.set()

    def _show(self, text):
        """Write text to the screen at once."""
        if text:
            self.screen.write(text)
            self.screen.flush()
            self.at_line_start = text.endswith("\n")

    def transmit(self):
        """Send what is typed until EOF, then tell the server we will send no more."""
        try:
            while True:
                data = self.keyboard.read(4096)
                if not data:
                    break
                self.sock.sendall(data)
            self.sock.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):   # connection gone, or stdin closed under us
            pass
        finally:
            self.input_ended.set()

    def _waited_enough(self, eof_at):
        """True once the server has had its chance to finish after our EOF."""
        now = time.monotonic()
        return (now - max(eof_at, self.last_arrival) >= QUIET_AFTER_EOF
                or now - eof_at >= MAX_WAIT_AFTER_EOF)

    def run(self):
        """Run the session to its end and close the socket; return why it ended."""
        receiver = threading.Thread(target=self.receive, name="receiver", daemon=True)
        keyboard = threading.Thread(target=self.transmit, name="keyboard", daemon=True)
        reason = "server closed"
        eof_at = None
        try:
            # Inside the try: Ctrl-C may come while a thread is starting, and by then the
            # keyboard thread may already have sent a line and the receiver printed the reply.
            receiver.start()
            keyboard.start()
            # Short waits, because on Windows Ctrl-C is only seen between them.
            while not self.server_closed.wait(0.05):
                if self.input_ended.is_set():
                    if eof_at is None:
                        eof_at = time.monotonic()
                    elif self._waited_enough(eof_at):
                        reason = "end of input"
                        break
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            try:
                # shutdown() rather than close(): it wakes the receiver's pending recv().
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            # Rather than join(): also safe if Ctrl-C came before the receiver started.  The
            # receiver writes nothing after it sets the event, so nothing is left half-printed.
            self.server_closed.wait(timeout=2.0)
            self.sock.close()
        if reason == "server closed" and self.input_ended.is_set():
            reason = "end of input"
        return reason


def _raw_stdin():
    """Return an unbuffered binary stream for standard input."""
    if sys.stdin is None:       # pythonw, or a service: nothing will ever be typed
        return io.BytesIO()
    raw = getattr(getattr(sys.stdin, "buffer", None), "raw", None)
    if raw is not None:
        return raw
    return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)


def run(host, port, *, prog="sockserv client", ui="auto"):
    """Connect to (host, port) and run an interactive session; return the exit status."""
    try:
        return _connect_and_run(host, port, prog, ui)
    except KeyboardInterrupt:   # Ctrl-C while connecting, or a second one while tidying up
        return 0


def _connect_and_run(host, port, prog, ui):
    """run() itself, without its Ctrl-C guard."""
    try:
        sock = connect(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        print(f"{prog}: error: cannot connect to {host}:{port}: {reason}", file=sys.stderr)
        return 1
    # Whatever the server sends must print, even if the terminal cannot show every character.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    interactive = (sys.stdin is not None and sys.stdin.isatty()
                   and sys.stdout is not None and sys.stdout.isatty())
    if threading.current_thread() is threading.main_thread():
        # A shell that starts a program in the background hands SIGINT on as "ignored", and
        # Python then never turns it into KeyboardInterrupt; Ctrl-C must always end a session.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    editor = None
    if interactive and ui != "plain":
        from . import client_tty
        editor = client_tty.line_editor(ui)
    if interactive:
        quit_keys = ("Ctrl-Z then Enter" if sys.platform == "win32" and editor is None
                     else "Ctrl-D")
        print(f"{prog}: connected to {host}:{port}; type a line and press Enter "
              f"({quit_keys} or Ctrl-C to quit)", file=sys.stderr, flush=True)
    if editor is not None:
        reason = client_tty.TtySession(sock, editor).run()
    else:
        session = Session(sock, _raw_stdin(), sys.stdout)
        reason = session.run()
        if interactive and (reason == "interrupted" or not session.at_line_start):
            # The terminal's cursor is after "^C" or after a line being typed: the message,
            # and then the shell's prompt, go on lines of their own.
            print(file=sys.stderr)
    print(f"{prog}: {farewell(reason, host, port)}", file=sys.stderr, flush=True)
    return 0


def farewell(reason, host, port):
    """The one line printed when a session ends, for each reason Session.run() returns."""
    return {"server closed": f"connection closed by {host}:{port}",
            "end of input": "end of input: disconnected",
            "interrupted": "interrupted: disconnected"}[reason]
