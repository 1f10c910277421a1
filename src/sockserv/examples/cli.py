"""The `python -m sockserv` command line: the Echo and Chat servers, and a line client.

    python -m sockserv [--version]
    python -m sockserv echo   [--host H] [--port P] [--udp] [--impl I] [--mode M] [-v]
    python -m sockserv chat   [--host H] [--port P] [--max-line N] [--idle-timeout S]
                              [--max-clients N] [--rate R] [--burst B]
                              [--console | --no-console] [--impl I] [-v]
    python -m sockserv client [--ui U] HOST PORT

--impl names an engine (engines.NAMES): stdlib and sockserv build the socketserver versions
(echo.py, chat.py), asyncio the event-loop versions (aio_echo.py, aio_chat.py, run through
ASYNCIO_RUNS); all four servers have the same outside, so serve() below drives them alike.

The same program is installed as the `sockserv` command.  docs/command-line.md is its manual;
a test checks that the page names every option defined here.

Servers are meant for a classroom, which decides the design of serve():

- Errors are one line, never a traceback.  A bad option exits with status 2 (OneLineParser);
  a server that cannot listen (port in use, unknown host) exits with status 1.
- Ready means ready: the single stdout line `... listening on HOST:PORT` is printed and
  flushed only once the socket listens, and shows the real port when --port is 0, so scripts
  and tests can wait for it.
- SIGINT (Ctrl-C) and SIGTERM stop the server within about a second, clients or not, with
  exit status 0 (on Windows SIGTERM is TerminateProcess: the process ends at once, no
  handler runs); so does the chat console's `quit`.  The signal handler only records the signal: stopping means shutdown(),
  which waits for the serve_forever() loop, so calling it from a handler that interrupted
  that very loop would deadlock.  The loop therefore runs in a worker thread while the main
  thread, where Python runs signal handlers, polls the record and then calls server.stop().
  (Polling, rather than an Event set by the handler: Event.set() takes a lock that the
  interrupted main thread may itself be holding inside Event.wait().)
"""

import argparse
import errno
import importlib
import importlib.metadata
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
import threading
import time

from sockserv.examples import engines
from sockserv.examples.chat_protocol import LIMITS

__all__ = ["IMPLS", "build_parser", "main"]

logger = logging.getLogger("sockserv.cli")

#: --impl choices: the module each engine is built on (engines.MODULES, the one list).
IMPLS = engines.MODULES
DEFAULT_HOST = "127.0.0.1"
ECHO_PORT = 9998
CHAT_PORT = 9999
#: serve_forever()'s poll interval: stop() waits up to this long for the loop to notice.
POLL_INTERVAL = 0.1
#: How long the main thread waits for the serving thread after stop() has returned.
JOIN_TIMEOUT = 5.0
#: Recorded instead of a signal number when the chat console's quit asks for the stop.
QUIT = "quit"


class OneLineParser(argparse.ArgumentParser):

    """ArgumentParser whose errors are one line on stderr, with a hint, and exit status 2."""

    def error(self, message):
        """Print 'PROG: error: MESSAGE (see PROG --help)' and exit with status 2."""
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def port_number(text):
    """argparse type: a port to listen on, 0-65535 (0: the OS picks a free one)."""
    return _port(text, lowest=0)


def remote_port(text):
    """argparse type: a port to connect to, 1-65535."""
    return _port(text, lowest=1)


def _port(text, lowest):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be {lowest}-65535, not {value}")
    return value


def positive_int(text):
    """argparse type: an integer of at least 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_number(text):
    """argparse type: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {text}")
    return value


def package_version():
    """The installed sockserv's version, or "unknown" if it is not installed."""
    try:
        return importlib.metadata.version("sockserv")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def positive_seconds(text):
    """argparse type: a finite number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


def _add_server_options(parser, default_port):
    """Options that echo and chat share."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s, this machine only); "
             "0.0.0.0 listens on every network interface, so anyone on the network can "
             "connect: there is no authentication")
    parser.add_argument(
        "--port", type=port_number, default=default_port,
        help="port to listen on, 0-65535 (default: %(default)s); "
             "0 lets the operating system pick a free port")
    parser.add_argument(
        "--impl", choices=engines.NAMES, default="sockserv",
        help="what the server is built on: the course's own 'sockserv' or the standard "
             "library's 'socketserver' ('stdlib'), a thread per client, or 'asyncio', one "
             "event loop for every client; all behave the same (default: %(default)s)")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log to stderr: -v for connections, leaves and errors, -vv for more")


def build_parser(prog="sockserv"):
    """Return the argument parser for the whole command line."""
    parser = OneLineParser(
        prog=prog,
        description="The course's Echo and Chat servers, and a line client to talk to them.",
        epilog="Run '%(prog)s COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()}",
                        help="print the version of sockserv and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    echo = commands.add_parser(
        "echo", help="run an Echo server (RFC 862): every byte sent comes back",
        description="Run an Echo server (RFC 862): whatever a client sends comes back "
                    "unchanged, until it closes.  Stop it with Ctrl-C (or SIGTERM).")
    _add_server_options(echo, ECHO_PORT)
    echo.add_argument(
        "--udp", action="store_true",
        help="echo UDP datagrams, each back to its sender, instead of TCP streams")
    echo.add_argument(
        "--mode", choices=("sync", "threading", "forking"), default=None,
        help="how clients are served: 'sync' one at a time, 'threading' a thread each, "
             "'forking' a process each (not on Windows) (default: threading); not with "
             "--impl asyncio, which serves every client on one event loop")
    echo.set_defaults(run=run_echo)

    chat = commands.add_parser(
        "chat", help="run a Chat server: every line goes to everyone connected",
        description="Run a Chat server: every line a client sends goes to everyone "
                    "connected (see the chat protocol page).  Students connect with nc, "
                    "telnet or the 'client' command.  A thread per client, or one event loop "
                    "for all with --impl asyncio.  No client "
                    "receives another's control characters or telnet commands; telnet's "
                    "Ctrl-C leaves like /quit.  Stop it with Ctrl-C, SIGTERM (not on "
                    "Windows, where it ends the process at once) or 'quit' on the console: "
                    "every client is told and disconnected.")
    _add_server_options(chat, CHAT_PORT)
    chat.add_argument(
        "--max-line", type=positive_int, default=4096, metavar="BYTES",
        help="longest line a client may send, in bytes; a longer one gets '! line too "
             "long' and is disconnected (default: %(default)s)")
    chat.add_argument(
        "--idle-timeout", type=positive_seconds, default=LIMITS.idle_timeout,
        metavar="SECONDS",
        help="disconnect a client that completes no line (no newline) for this many "
             "seconds, counted from its last complete line: bytes without a newline do not "
             "count; it gets '* idle timeout' (default: %(default)g)")
    chat.add_argument(
        "--max-clients", type=positive_int, default=LIMITS.max_clients, metavar="N",
        help="most clients connected at once; one more gets exactly '! server full' and is "
             "closed, and nobody else sees anything (default: %(default)s)")
    chat.add_argument(
        "--rate", type=non_negative_number, default=LIMITS.rate, metavar="R",
        help="flood limit: lines per second refilled into each client's bucket of --burst "
             "tokens; every line except an empty one takes a token, and a line that finds "
             "the bucket empty is dropped (not relayed, not run) and the sender gets "
             "'! slow down', at most once per second; 0 turns the limit off "
             "(default: %(default)g)")
    chat.add_argument(
        "--burst", type=positive_int, default=LIMITS.burst, metavar="B",
        help="flood limit: the size of each client's bucket, the lines it may send at once "
             "(default: %(default)s)")
    chat.add_argument(
        "--console", action=argparse.BooleanOptionalAction, default=None,
        help="read the teacher's commands from stdin: who, say TEXT, kick NAME, quit, help "
             "(end of input ends the console, not the server) (default: on when stdin is a "
             "terminal)")
    chat.set_defaults(run=run_chat)

    client = commands.add_parser(
        "client", help="connect to a server: send what you type, print what arrives",
        description="A line client for Linux, macOS and Windows: what you type is sent, "
                    "what arrives is printed as it arrives (bytes that are not UTF-8 show as a "
                    "replacement character; control characters as visible symbols, never "
                    "obeyed). Ends when the server closes the connection, or on Ctrl-C, or on "
                    "Ctrl-D (plain mode on Windows: Ctrl-Z then Enter), with one line saying "
                    "so.")
    client.add_argument("host", metavar="HOST", help="server name or address, e.g. 127.0.0.1")
    client.add_argument(
        "--ui", choices=("auto", "prompt-toolkit", "readline", "plain"), default="auto",
        help="on a terminal, how the line being typed is edited: 'prompt-toolkit' (if "
             "installed) or 'readline' (Linux, macOS) redraw it below incoming lines, with "
             "arrow keys and history; 'plain' lets the terminal echo it; 'auto' takes the "
             "first that works; without a terminal (a pipe) the client is always plain "
             "(default: %(default)s)")
    client.add_argument("port", metavar="PORT", type=remote_port,
                        help="server port, 1-65535 (echo: 9998, chat: 9999)")
    client.set_defaults(run=run_client)
    # Kept so that main() can blame a stray argument on the command it follows.
    parser.command_parsers = {"echo": echo, "chat": chat, "client": client}
    return parser


def _configure_logging(verbosity):
    """Quiet by default: warnings only; -v adds INFO, -vv DEBUG; one line each, on stderr."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def _load_impl(name):
    """Import the module that --impl names and check it has the server classes."""
    module = importlib.import_module(IMPLS[name])
    if name in engines.THREADED and not hasattr(module, "TCPServer"):
        raise ImportError(f"{IMPLS[name]} has no TCPServer")
    return module


def _bind_error(exc, host, port):
    """Explain, in one line, why a server could not listen on host:port."""
    code = getattr(exc, "errno", None)
    if code in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
        return (f"port {port} is already in use on {host} (is another server running? "
                f"choose another with --port)")
    if code in (errno.EACCES, getattr(errno, "WSAEACCES", None)):
        if os.name == "posix":
            # A Unix rule (Linux may lower it: net.ipv4.ip_unprivileged_port_start).
            return (f"not allowed to listen on {host}:{port} (on Unix, ports below 1024 "
                    f"usually need administrator rights; choose another with --port)")
        # Windows has no such rule; it refuses ports it has reserved or excluded.
        return (f"not allowed to listen on {host}:{port} (the port is reserved or in "
                f"exclusive use; choose another with --port)")
    if isinstance(exc, socket.gaierror):
        wrong_family = (getattr(socket, "EAI_FAMILY", None),
                        getattr(socket, "EAI_ADDRFAMILY", None))
        if code in wrong_family:
            return f"cannot listen on {host}:{port}: use an IPv4 address or name"
        return f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
    if code == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: this machine has no such address"
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot listen on {host}:{port}: {reason}"


def _is_loopback(ip):
    """True if ip (a string) is a loopback address such as 127.0.0.1."""
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def serve(prog, make_server, args, summary, on_ready=None):
    """Create a server, announce it, serve until SIGINT/SIGTERM, stop it; return the status.

    on_ready(server, request_stop), if given, is called once the server listens;
    request_stop() (from any thread) stops the server as a signal does.
    """
    stop_signals = []
    owner_pid = os.getpid()

    def on_signal(signum, frame):
        if os.getpid() != owner_pid:
            # A forked child that has not yet restored the default handler: die as told.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stop_signals.append(signum)     # only record it; see the module docstring

    catch = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):     # Ctrl-Break in a Windows console
        catch.append(signal.SIGBREAK)
    previous = {signum: signal.signal(signum, on_signal) for signum in catch}
    try:
        try:
            impl = _load_impl(args.impl)
        except ImportError as exc:
            print(f"{prog}: error: cannot use --impl {args.impl}: {exc}", file=sys.stderr)
            return 1
        try:
            server = make_server(impl)
        except (OSError, UnicodeError, ValueError) as exc:
            print(f"{prog}: error: {_bind_error(exc, args.host, args.port)}", file=sys.stderr)
            return 1
        return _serve_until_signal(prog, server, stop_signals, summary, on_ready)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve_until_signal(prog, server, stop_signals, summary, on_ready):
    """Run server in a worker thread until a signal is recorded; stop it; return the status."""
    host, port = server.server_address[:2]
    worker = threading.Thread(target=server.serve_forever, name="serve_forever",
                              kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
    try:
        worker.start()
        if not _is_loopback(host):
            print(f"{prog}: warning: listening on {host}: anyone who can reach this machine "
                  f"over the network can connect (there is no authentication)",
                  file=sys.stderr, flush=True)
        print(f"{prog}: listening on {host}:{port} ({summary}); press Ctrl-C to stop",
              flush=True)
        if on_ready is not None:
            on_ready(server, lambda: stop_signals.append(QUIT))
        # time.sleep() is cut short by a signal and its handler runs at once (PEP 475 then
        # resumes the sleep, hence the short naps).
        while not stop_signals and worker.is_alive():
            time.sleep(0.05)
    finally:
        # Also on the way out of an unexpected exception: never leave clients hanging.
        if stop_signals and stop_signals[0] == QUIT:
            logger.info("quit from the console: stopping")
        elif stop_signals:
            logger.info("%s received: stopping", signal.Signals(stop_signals[0]).name)
        server.stop()
        worker.join(timeout=JOIN_TIMEOUT)
    if not stop_signals:
        print(f"{prog}: error: the server stopped unexpectedly", file=sys.stderr)
        return 1
    if worker.is_alive():
        print(f"{prog}: error: the server did not stop within {JOIN_TIMEOUT:g} s",
              file=sys.stderr)
        return 1
    return 0


def run_echo(args, prog):
    """The echo command."""
    from sockserv.examples import echo

    def make(impl):
        return echo.make_server((args.host, args.port), impl=impl, udp=args.udp,
                                mode=args.mode)
    transport = "UDP" if args.udp else "TCP"
    return serve(prog, make, args, f"echo, {transport}, {args.mode}, impl {args.impl}")


def run_chat(args, prog):
    """The chat command."""
    from sockserv.examples import chat

    def make(impl):
        return chat.make_server((args.host, args.port), impl=impl, **_chat_limits(args))
    return _serve_chat(prog, make, args, "threading")


def run_asyncio_chat(args, prog):
    """The chat command with --impl asyncio."""
    from sockserv.examples import aio_chat

    def make(impl):
        return aio_chat.make_server((args.host, args.port), **_chat_limits(args))
    return _serve_chat(prog, make, args, "event loop")


def run_asyncio_echo(args, prog):
    """The echo command with --impl asyncio."""
    from sockserv.examples import aio_echo

    def make(impl):
        return aio_echo.make_server((args.host, args.port), udp=args.udp)
    transport = "UDP" if args.udp else "TCP"
    return serve(prog, make, args, f"echo, {transport}, event loop, impl {args.impl}")


#: The commands' runners for --impl asyncio, in place of set_defaults(run=...).
ASYNCIO_RUNS = {"echo": run_asyncio_echo, "chat": run_asyncio_chat}


def _chat_limits(args):
    """The chat's limits from the command line, as make_server's keywords."""
    return dict(max_line=args.max_line, idle_timeout=args.idle_timeout,
                max_clients=args.max_clients, rate=args.rate, burst=args.burst)


def _serve_chat(prog, make, args, concurrency):
    """Serve a chat made by make(impl), with the teacher's console if asked or on a tty."""
    console = args.console
    if console is None:
        console = sys.stdin is not None and sys.stdin.isatty()
    on_ready = _start_console if console and sys.stdin is not None else None
    summary = f"chat, TCP, {concurrency}, impl {args.impl}"
    if on_ready is not None:
        summary += "; console on: type help"
    return serve(prog, make, args, summary, on_ready)


def _start_console(server, request_stop):
    """Run the teacher's console on stdin in a daemon thread (a read of stdin cannot be
    interrupted everywhere, and must not keep the process alive)."""
    from sockserv.examples.chat_console import Console

    console = Console(server.registry, sys.stdin, sys.stdout, request_stop)
    threading.Thread(target=console.run, name="chat console", daemon=True).start()


def run_client(args, prog):
    """The client command."""
    from sockserv.examples import client
    return client.run(args.host, args.port, prog=prog, ui=args.ui)


def main(argv=None, prog="sockserv"):
    """Run the command line with argv (default sys.argv[1:]); return the exit status."""
    parser = build_parser(prog)
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.command_parsers[args.command].error(
            f"unrecognized arguments: {' '.join(extras)}")
    run = args.run
    if getattr(args, "impl", None) == "asyncio":
        if getattr(args, "mode", None) is not None:
            parser.command_parsers["echo"].error(
                "--mode does not apply to --impl asyncio, which serves every client on "
                "one event loop")
        run = ASYNCIO_RUNS[args.command]
    elif args.command == "echo":
        args.mode = args.mode or "threading"
    if args.command == "echo" and args.mode == "forking" and not hasattr(os, "fork"):
        print(f"{prog} echo: error: --mode forking needs os.fork(), which this platform "
              f"lacks (see '{prog} echo --help')", file=sys.stderr)
        return 2
    _configure_logging(getattr(args, "verbose", 0))
    try:
        return run(args, f"{prog} {args.command}")
    except KeyboardInterrupt:
        # Ctrl-C before a server has put its own handler in place (or just after it has
        # restored the old one): a stop on request all the same, and no traceback.
        return 0
