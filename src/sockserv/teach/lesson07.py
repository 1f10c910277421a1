"""Bug tests and exercise checks for lesson 07, "The chat server".

The lesson starts from a first chat server with the mistakes such servers
usually have, and fixes them one at a time until it has the shape of the
course's classroom chat (``sockserv.examples.chat``).  Every stage speaks
the same small protocol, so that one set of tests runs on all of them:

* a client that connects is sent ``* welcome NAME`` first;
* every line a client sends goes to everyone, the sender included, as
  ``NAME: TEXT``;
* from the fixed stages on: a line longer than ``MAX_LINE`` bytes gets
  ``! line too long`` and the connection is closed; a client that sends no
  line for the handler's ``timeout`` seconds gets ``* idle timeout`` and is
  closed; ``server.stop()`` sends everyone ``* server shutting down`` and
  closes every connection.

Each mistake has a *bug test*, a function the learner runs on a server class
and a handler class: it prints one "Check passed" line, or raises
``ExerciseFailed`` with one sentence saying what went wrong and why, within
a few seconds.  ``BUG_TESTS`` lists them in the lesson's order.

How the tests make races certain instead of likely: the server they build
wraps every accepted connection in a ``_Held`` socket, which can *pause*
its next sendall() until the test lets it go, and *hold back* the news of a
reset or an end of stream from the handler reading it.  Nothing is faked:
the bytes, the resets and the Python exceptions are real; the test only
chooses the unlucky order of two threads that a busy classroom server
would meet sooner or later.

And the exercises' checks: ``check_me_action`` (a ``/me`` action),
``check_private_message`` (``/msg NAME TEXT``) and ``check_bot`` (a bot
that answers questions, run against the real course server).
"""

import re
import socket
import struct
import sys
import threading
import time

from .checks import ExerciseFailed, check, describe_error, passed, preview, require_filled_in
from .harness import CLIENT_TIMEOUT, LOCALHOST, POLL_INTERVAL, TimedOut, run_bounded

__all__ = ["MAX_LINE", "IDLE_TIMEOUT", "SHUTDOWN_LINE", "BUG_TESTS", "FAQ",
           "test_silent_client_hears", "test_leave_before_speaking",
           "test_join_during_broadcast", "test_dead_client", "test_slow_reader",
           "test_framing", "test_line_too_long", "test_idle_timeout", "test_stop",
           "check_me_action", "check_private_message", "check_bot"]

#: Longest line, in bytes before its newline, the fixed stages accept.
MAX_LINE = 1024
#: The idle timeout (handler ``timeout``) the idle test gives the handler.
IDLE_TIMEOUT = 0.2
#: What stop() sends every client before it closes the connections.
SHUTDOWN_LINE = b"* server shutting down\n"
TOO_LONG = b"! line too long\n"
IDLE_LINE = b"* idle timeout\n"

#: Seconds a test waits for something a correct server does at once (and a
#: wrong one never does): long enough for a loaded 2-core machine.
SETTLE = 0.5
#: Seconds a paused send or held read waits for the test at most.
HOLD = 3.0
#: Seconds the slow-reader test gives the other clients to receive the flood.
STALL_WAIT = 2.0
#: Seconds stopping a server may take in test_stop.
STOP_WAIT = 2.0
#: Small kernel buffers for the slow reader, so that "full" comes quickly.
SMALL_BUFFER = 4096
#: The flood of the slow-reader test: FLOOD_LINES lines of FLOOD_WIDTH bytes.
FLOOD_LINES = 200
FLOOD_WIDTH = 500


# -- the held connection -------------------------------------------------------------


class _Held(socket.socket):
    """A server-side connection whose next sendall() can pause, and whose bad news can wait.

    pause_next_send(): the next sendall() sets ``paused`` and waits for
    ``release`` (at most HOLD s) before it sends.  hold_bad_news(): a recv
    that returns b'' or raises OSError first sets ``noticed`` and waits for
    ``release``.  release.set() lets everything go on.
    """

    _pause = False
    _hold = False

    def arm(self):
        self.reading = threading.Event()    # set while a recv() waits
        self.paused = threading.Event()
        self.noticed = threading.Event()
        self.release = threading.Event()

    def pause_next_send(self):
        self._pause = True

    def hold_bad_news(self):
        self._hold = True

    def sendall(self, data, *flags):
        if self._pause:
            self._pause = False
            self.paused.set()
            self.release.wait(HOLD)
        return super().sendall(data, *flags)

    def _bad_news(self):
        if self._hold:
            self._hold = False
            self.noticed.set()
            self.release.wait(HOLD)

    def recv(self, bufsize, *flags):
        self.reading.set()
        try:
            data = super().recv(bufsize, *flags)
        except OSError:
            self.reading.clear()
            self._bad_news()
            raise
        self.reading.clear()
        if not data:
            self._bad_news()
        return data

    def recv_into(self, buffer, nbytes=0, *flags):
        self.reading.set()
        try:
            count = super().recv_into(buffer, nbytes, *flags)
        except OSError:
            self.reading.clear()
            self._bad_news()
            raise
        self.reading.clear()
        if not count:
            self._bad_news()
        return count


def _test_server(server_class, handler_class, sndbuf=None):
    """server_class(LOCALHOST, handler_class), instrumented for the bug tests.

    Records handler errors (errors: (client_address, exception)), wraps
    each connection in _Held (conns, in accept order), counts finished
    connections (finished), and sets SO_SNDBUF to sndbuf if given.
    """

    class Tested(server_class):
        def get_request(self):
            conn, address = super().get_request()
            held = _Held(conn.family, conn.type, conn.proto, fileno=conn.detach())
            held.arm()
            if sndbuf is not None:
                held.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            self.conns.append(held)
            return held, address

        def shutdown_request(self, request):
            try:
                super().shutdown_request(request)
            finally:
                with self.count_lock:
                    self.finished += 1

        def handle_error(self, request, client_address):
            self.errors.append((client_address, sys.exc_info()[1]))

    Tested.__name__ = server_class.__name__
    server = Tested(LOCALHOST, handler_class)
    server.conns = []
    server.errors = []
    server.finished = 0
    server.count_lock = threading.Lock()
    return server


class _Client:
    """A test client: it reads the welcome, sends bytes, looks for bytes in what came."""

    def __init__(self, address, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(CLIENT_TIMEOUT)
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.received = bytearray()
        self.eof = False
        self.address = self.sock.getsockname()
        welcome = self.wait_for(b"\n", CLIENT_TIMEOUT)
        first = bytes(self.received).partition(b"\n")[0]
        check(welcome and first.startswith(b"* welcome "),
              f"a client that connected was sent {preview(first)} first, expected "
              f"b'* welcome NAME'.")
        self.name = first[len(b"* welcome "):].decode("utf-8", "replace")

    def say(self, data):
        self.sock.sendall(data)

    def _read(self, timeout):
        """One recv() within timeout; False on EOF, timeout or reset."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 1e-3))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.received += data
        return True

    def wait_for(self, wanted, seconds):
        """Read until wanted (bytes) is in what came, EOF, or seconds pass; True if it came."""
        deadline = time.monotonic() + seconds
        while wanted not in self.received:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return wanted in self.received
        return True

    def wait_for_eof(self, seconds):
        """Read until EOF or seconds pass; True at EOF."""
        deadline = time.monotonic() + seconds
        while not self.eof and (left := deadline - time.monotonic()) > 0:
            self._read(left)
        return self.eof

    def lines(self):
        """What came so far, as decoded lines (an unfinished last line included)."""
        return bytes(self.received).decode("utf-8", "replace").splitlines()

    def reset(self):
        """Close with SO_LINGER 0: the kernel sends a reset, not an end of stream."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


class _Scenario:
    """A served test server and its clients; on exit everything is stopped and closed."""

    def __init__(self, server_class, handler_class, sndbuf=None):
        self.server = _test_server(server_class, handler_class, sndbuf)
        self.clients = []
        self.loop = threading.Thread(target=self.server.serve_forever,
                                     args=(POLL_INTERVAL,), name="lesson07 serve", daemon=True)

    def __enter__(self):
        self.loop.start()
        return self

    def join(self, rcvbuf=None, speak=True):
        """Connect a client; with speak, it says hello and waits to hear itself."""
        client = _Client(self.server.server_address, rcvbuf)
        self.clients.append(client)
        if speak:
            marker = f"{client.name} is here".encode()
            client.say(marker + b"\n")
            check(client.wait_for(marker, CLIENT_TIMEOUT),
                  f"a client that said {marker!r} did not hear its own line within "
                  f"{CLIENT_TIMEOUT:g} s: every line goes to everyone, the sender included.")
            # Wait until its handler is back in recv(), its broadcast over: a
            # newcomer joining while that loop still runs would be bug 3 striking
            # at random, in a test that is about something else.
            for conn in self.server.conns:
                try:
                    ours = conn.getpeername()[:2] == client.address[:2]
                except OSError:
                    continue    # closed: another client's, gone
                if ours:
                    conn.reading.wait(CLIENT_TIMEOUT)
        return client

    def errors_of(self, client):
        return [error for address, error in self.server.errors
                if tuple(address[:2]) == tuple(client.address[:2])]

    def wait_finished(self, count, seconds=CLIENT_TIMEOUT):
        deadline = time.monotonic() + seconds
        while self.server.finished < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.server.finished >= count

    def stop(self):
        """shutdown() and server_close(), or the server's own stop() if it has one."""
        if hasattr(self.server, "stop"):
            self.server.stop()
        else:
            self.server.shutdown()
            self.server.server_close()

    def __exit__(self, *exc):
        for conn in self.server.conns:
            conn.release.set()
        for client in self.clients:
            client.close()
        # With every client gone, every handler of every stage ends.
        if self.loop.is_alive():
            try:
                run_bounded(self.stop, timeout=CLIENT_TIMEOUT, what="stopping the chat")
            finally:
                self.loop.join(CLIENT_TIMEOUT)
        return False


def _check_classes(server_class, handler_class):
    check(isinstance(server_class, type) and hasattr(server_class, "serve_forever"),
          "pass the server class first, then the handler class.")
    check(isinstance(handler_class, type) and hasattr(handler_class, "handle"),
          "pass the handler class itself, not an instance or a function.")
    require_filled_in(handler_class)
    # The first version keeps its clients in a class attribute, which outlives a
    # server; each test starts, as a program does, with an empty room.
    for cls in handler_class.__mro__:
        clients = vars(cls).get("clients")
        if isinstance(clients, (dict, set, list)):
            clients.clear()


def _first_error(scenario, client, what):
    """Raise ExerciseFailed naming the first error of client's handler, if there is one."""
    errors = scenario.errors_of(client)
    if errors:
        raise ExerciseFailed(f"{what} ended that client's handler with "
                             f"{describe_error(errors[0])}.")


# -- the bug tests -----------------------------------------------------------------


def test_silent_client_hears(server_class, handler_class):
    """A client that has not said anything yet still receives what the others say."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        quiet = scenario.join(speak=False)
        talker = scenario.join()
        talker.say(b"hello, anyone?\n")
        check(talker.wait_for(b": hello, anyone?\n", CLIENT_TIMEOUT),
              "the client that said b'hello, anyone?' did not hear its own line.")
        check(quiet.wait_for(b": hello, anyone?\n", SETTLE),
              f"a client that had not said anything yet received nothing within "
              f"{SETTLE:g} s when another said b'hello, anyone?': register each "
              f"client when it connects, not when it first speaks.")
    passed("a client that has said nothing yet hears the others")


def test_leave_before_speaking(server_class, handler_class):
    """A client that leaves before it says anything leaves without an error."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        shy = scenario.join(speak=False)
        shy.close()
        check(scenario.wait_finished(1),
              f"the server had not finished with a client {CLIENT_TIMEOUT:g} s after "
              f"it closed its connection.")
        errors = scenario.errors_of(shy)
        if errors and isinstance(errors[0], KeyError):
            raise ExerciseFailed(
                "finish() raised KeyError for a client that left before it said "
                "anything: it was never registered, so deleting it fails; register "
                "on connect, and remove with pop(name, None).")
        _first_error(scenario, shy, "leaving before saying anything")
        scenario.join()   # and the server still serves
    passed("a client that leaves before it speaks leaves quietly")


def test_join_during_broadcast(server_class, handler_class):
    """A client that joins while a broadcast is under way breaks nothing."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        first = scenario.join()
        sender = scenario.join()
        check(first.wait_for(f"{sender.name} is here".encode(), CLIENT_TIMEOUT),
              "the first client did not receive the second one's line.")
        held = scenario.server.conns[0]
        held.pause_next_send()
        sender.say(b"to everyone\n")
        check(held.paused.wait(CLIENT_TIMEOUT),
              "the server never sent b'to everyone' to the first client.")
        # The broadcast is now stopped half-way, between two clients.  A
        # newcomer arrives; where the room has no lock, it is added now.
        newcomer = scenario.join(speak=False)
        newcomer.say(b"me too\n")
        newcomer.wait_for(b": me too\n", SETTLE)
        held.release.set()
        got = sender.wait_for(b": to everyone\n", CLIENT_TIMEOUT)
        errors = scenario.errors_of(sender)
        if errors and isinstance(errors[0], RuntimeError):
            raise ExerciseFailed(
                f"{describe_error(errors[0])} ended the sender's handler: another "
                f"thread added a client while it was going through the dict of "
                f"clients; guard the dict with a lock, and send to a copy.")
        _first_error(scenario, sender, "sending while a client joined")
        check(got, "the sender never heard its own b'to everyone'.")
    passed("a client can join while a line goes out to everyone")


def test_dead_client(server_class, handler_class):
    """A client whose connection broke does not take the sender down with it."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        dead = scenario.join()
        sender = scenario.join()
        held = scenario.server.conns[0]
        # The handler of the dead client is kept from noticing the reset, so
        # that the sender is certain to meet the broken connection first.
        held.hold_bad_news()
        dead.reset()
        check(held.noticed.wait(CLIENT_TIMEOUT), "the server never read from the reset connection.")
        sender.say(b"still there?\n")
        got = sender.wait_for(b": still there?\n", CLIENT_TIMEOUT)
        held.release.set()
        errors = scenario.errors_of(sender)
        if errors and isinstance(errors[0], OSError):
            raise ExerciseFailed(
                f"sending to a client whose connection was reset raised "
                f"{describe_error(errors[0])} in the sender's handler, and ended "
                f"it: one client's broken connection is not the sender's problem, "
                f"so catch OSError for each client.")
        _first_error(scenario, sender, "sending to a broken connection")
        check(got, "after a client's connection was reset, the sender never heard "
                   "its own b'still there?'.")
    passed("a broken connection ends only its own client")


def _flood_marks(data):
    return set(re.findall(rb"flood (\d{3}) x", data))


def test_slow_reader(server_class, handler_class):
    """A client that stops reading does not stop the others from hearing."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class, sndbuf=SMALL_BUFFER) as scenario:
        sleeper = scenario.join(rcvbuf=SMALL_BUFFER)
        listener = scenario.join()
        sender = scenario.join()
        flood = b"".join(f"flood {i:03d} ".encode().ljust(FLOOD_WIDTH - 1, b"x") + b"\n"
                         for i in range(FLOOD_LINES))
        # From here on the sleeper reads nothing: its buffers fill up.
        sender.sock.settimeout(STALL_WAIT)
        try:
            sender.sock.sendall(flood)
        except TimeoutError:
            pass    # the server stopped reading the sender: the check says so below
        deadline = time.monotonic() + STALL_WAIT
        while (len(_flood_marks(listener.received)) < FLOOD_LINES
               and (left := deadline - time.monotonic()) > 0 and listener._read(left)):
            pass
        got = len(_flood_marks(listener.received))
        sleeper.reset()
        _first_error(scenario, listener, "a slow reader in the room")
        check(got == FLOOD_LINES,
              f"while one client read nothing, another received only part of the "
              f"{FLOOD_LINES} lines a third one sent, within {STALL_WAIT:g} s: the "
              f"sender's handler waits for the slow client's sendall() before it "
              f"goes on; give each client its own outbox and writer thread.")
    passed("a client that stops reading stalls only itself")


def test_framing(server_class, handler_class):
    """Lines go out whole: not cut where recv() cut them, not merged."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        slow, other, listener = (scenario.join() for _ in range(3))
        slow.say(b"hel")
        listener.wait_for(b": hel", SETTLE)      # a server that relays reads sends it now
        other.say(b"good morning\n")
        check(listener.wait_for(b"good morning", CLIENT_TIMEOUT),
              "the listener never received b'good morning'.")
        slow.say(b"lo\n")
        listener.wait_for(b"lo\n", CLIENT_TIMEOUT)
        slow.say(b"one\ntwo\n")
        listener.wait_for(b"two\n", CLIENT_TIMEOUT)
        lines = listener.lines()
        for wanted, how in [(f"{slow.name}: hello", "sent in two pieces"),
                            (f"{other.name}: good morning", "sent while another line was half-way"),
                            (f"{slow.name}: two", "sent in one write after another line")]:
            check(wanted in lines,
                  f"{wanted!r} ({how}) never arrived as one line; the listener got "
                  f"{preview(' | '.join(lines[-4:]), 80)}: a recv() is not a line, so read "
                  f"whole lines (rfile.readline()) and send each one whole.")
    passed("every line arrives whole, whatever recv() returned")


def test_line_too_long(server_class, handler_class):
    """A line over MAX_LINE bytes is refused with b'! line too long', and goes nowhere."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        talker, listener = scenario.join(), scenario.join()
        talker.say(b"y" * MAX_LINE + b"\n")         # the longest line allowed
        whole = listener.wait_for(b": " + b"y" * MAX_LINE + b"\n", 4 * SETTLE)
        try:
            talker.say(b"z" * (16 * MAX_LINE) + b"\n")
        except OSError:
            pass    # the server closed while we were still sending: fine
        check(talker.wait_for(TOO_LONG, 4 * SETTLE) and talker.wait_for_eof(CLIENT_TIMEOUT),
              f"a line of {16 * MAX_LINE} bytes did not get {TOO_LONG!r} and a "
              f"closed connection: read at most MAX_LINE + 1 bytes with "
              f"readline(limit), and refuse a line that has no newline by then.")
        listener.wait_for(b"zzz", SETTLE)
        check(b"zzz" not in listener.received,
              "part of a line that was too long reached another client.")
        check(whole, f"a line of exactly {MAX_LINE} bytes, the longest allowed, did not "
                     f"reach another client whole.")
    passed(f"a line over {MAX_LINE} bytes is refused and reaches no one")


def test_idle_timeout(server_class, handler_class):
    """A client that sends no line for the handler's timeout is told and closed."""
    _check_classes(server_class, handler_class)
    quick = type(handler_class.__name__, (handler_class,), {"timeout": IDLE_TIMEOUT})
    with _Scenario(server_class, quick) as scenario:
        sleeper = scenario.join()
        wait = IDLE_TIMEOUT + 1.5
        told = sleeper.wait_for(IDLE_LINE, wait)
        check(told and sleeper.wait_for_eof(SETTLE),
              f"a client that sent nothing for {wait:g} s, with the handler's timeout "
              f"at {IDLE_TIMEOUT:g} s, was not sent {IDLE_LINE!r} and closed: give "
              f"the handler a timeout, and catch TimeoutError around readline().")
        _first_error(scenario, sleeper, "the idle timeout")
        scenario.join()
    passed("an idle client is told so and closed; the others go on")


def test_stop(server_class, handler_class):
    """Stopping the server with clients connected is quick, and tells them."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        clients = [scenario.join(), scenario.join()]
        how = "stop()" if hasattr(scenario.server, "stop") else "shutdown() and server_close()"
        try:
            run_bounded(scenario.stop, timeout=STOP_WAIT, what="stopping")
        except TimedOut as stuck:
            for client in clients:
                client.close()      # now every handler ends, and the stop with them
            stuck.thread.join(CLIENT_TIMEOUT)
            scenario.loop.join(CLIENT_TIMEOUT)
            raise ExerciseFailed(
                f"{how} did not return within {STOP_WAIT:g} s while 2 clients were "
                f"connected: each handler waits for its client, and the server waits "
                f"for every handler; tell everyone, then close their connections.") from None
        scenario.loop.join(CLIENT_TIMEOUT)
        for client in clients:
            check(client.wait_for(SHUTDOWN_LINE, CLIENT_TIMEOUT),
                  f"a connected client was not sent {SHUTDOWN_LINE!r} when the server stopped.")
            check(client.wait_for_eof(CLIENT_TIMEOUT),
                  "a connected client was not disconnected when the server stopped.")
    passed("stopping tells every client and returns promptly")


#: The bug tests in the lesson's order, by the mistake each one shows.
BUG_TESTS = {
    "a silent client hears nothing": test_silent_client_hears,
    "KeyError when a silent client leaves": test_leave_before_speaking,
    "the dict changes during a broadcast": test_join_during_broadcast,
    "one dead client ends the sender": test_dead_client,
    "one slow reader stalls everyone": test_slow_reader,
    "no framing": test_framing,
    "no bound on a line": test_line_too_long,
    "no idle timeout": test_idle_timeout,
    "stop waits for every client": test_stop,
}


# -- Exercises 1 and 2: commands on the classroom design --------------------------------


def _wrong(client, line, expected, why=None):
    """One sentence: client received line, expected expected (and, if given, why)."""
    reason = f": {why}" if why else ""
    return (f"{client} received {preview(line, 60)} after the command, expected "
            f"{expected!r}{reason}.")


def _next_line(client, seconds=4 * SETTLE):
    """The next complete line a _Client receives (str), or None."""
    start = getattr(client, "taken", 0)
    deadline = time.monotonic() + seconds
    while b"\n" not in client.received[start:]:
        left = deadline - time.monotonic()
        if left <= 0 or not client._read(left):
            return None
    end = client.received.index(b"\n", start)
    client.taken = end + 1
    return bytes(client.received[start:end]).decode("utf-8", "replace")


def _room_of(scenario, count):
    """count clients joined one after another; each has read up to the last one's hello."""
    clients = [scenario.join() for _ in range(count)]
    last_hello = f"{clients[-1].name}: {clients[-1].name} is here\n".encode()
    for client in clients:
        client.wait_for(last_hello, CLIENT_TIMEOUT)
        client.taken = client.received.find(last_hello) + len(last_hello)
    return clients


def _sync(clients, sender):
    """sender says a marker line; every client reads up to it; return what came before."""
    marker = f"{sender.name}: -- sync --"
    sender.say(b"-- sync --\n")
    before = {}
    for client in clients:
        lines = []
        while (line := _next_line(client)) is not None and line != marker:
            lines.append(line)
        check(line == marker, f"a client never received the line {marker!r}.")
        before[client.name] = lines
    return before


#: An action whose spaces all count: two after '/me' (the second is the
#: action's own), two inside, two at the end.  Kept exactly as typed after '/me '.
SPACED_ACTION = b"/me  stretches  slowly  "
#: Lines with no action: '/me' alone, and '/me' followed only by spaces.
NO_ACTION = (b"/me", b"/me   ")


def check_me_action(server_class, handler_class):
    """/me ACTION goes to everyone as '* NAME ACTION'; plain lines are as before.

    ACTION is the text exactly as typed after '/me ', its spaces included
    (at the start, inside and at the end); '/me' alone or followed only by
    spaces sends nothing; '/meow' is an ordinary line.
    """
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        alice, bob = _room_of(scenario, 2)
        alice.say(b"/me waves\n")
        expected = f"* {alice.name} waves"
        for client, who in ((bob, "another client"), (alice, "the sender")):
            line = _next_line(client, 4 * SETTLE)
            check(line is not None, f"{who} received nothing within {4 * SETTLE:g} s "
                                    f"after b'/me waves': an action goes to everyone.")
            check(line == expected, _wrong(who, line, expected))
        alice.say(SPACED_ACTION + b"\n")
        # A space wherever a learner's tidying-up drops one: lstrip() loses the
        # first, split() and join() the inner pairs, rstrip() the last two.
        action = SPACED_ACTION[len(b"/me "):].decode()
        expected = f"* {alice.name} {action}"
        line = _next_line(bob)
        check(line == expected, f"{SPACED_ACTION!r} reached the others as "
                                f"{preview(line or '', 60)}, expected {expected!r}: keep "
                                f"the action's text as it was typed after '/me ', every "
                                f"space included.")
        _next_line(alice)
        for empty in NO_ACTION:
            alice.say(empty + b"\n")
            seen = _sync([alice, bob], alice)
            check(seen[bob.name] == [], f"{empty!r} reached the others as "
                                        f"{preview(' | '.join(seen[bob.name]), 60)}: an "
                                        f"empty action is not sent, nor one of only "
                                        f"spaces.")
        alice.say(b"/meow\n")
        expected = f"{alice.name}: /meow"
        line = _next_line(bob)
        check(line == expected, f"b'/meow' reached the others as {preview(line or '', 60)}, "
                                f"expected {expected!r}: only '/me ' starts an action.")
        alice.say(b"hello\n")
        line = _next_line(bob)
        check(line == f"{alice.name}: hello",
              f"after /me, a plain b'hello' reached the others as "
              f"{preview(line or '', 60)}: every other line is handled as before.")
    passed("/me ACTION reaches everyone as '* NAME ACTION'; other lines are unchanged")


def check_private_message(server_class, handler_class):
    """/msg NAME TEXT reaches NAME (and a copy the sender) only; errors say why."""
    _check_classes(server_class, handler_class)
    with _Scenario(server_class, handler_class) as scenario:
        alice, bob, carol = _room_of(scenario, 3)
        alice.say(f"/msg {bob.name} meet at 3\n".encode())
        expected = f"* {alice.name} to you: meet at 3"
        line = _next_line(bob)
        check(line == expected, f"the addressee received {preview(line or '', 60)}, "
                                f"expected {expected!r}.")
        copy = f"* you to {bob.name}: meet at 3"
        line = _next_line(alice)
        check(line == copy, f"the sender received {preview(line or '', 60)}, expected "
                            f"its copy {copy!r}.")
        seen = _sync([alice, bob, carol], carol)
        check(seen[carol.name] == [],
              f"a third client received {preview(' | '.join(seen[carol.name]), 60)}: a "
              f"private message goes to its addressee only.")
        alice.say(b"/msg nobody hello\n")
        line = _next_line(alice)
        check(line == "! no such user: nobody",
              _wrong("the sender of /msg to a name nobody has", line or "", "! no such user: nobody"))
        # Text of only spaces is no text: sent, it would reach the addressee as a
        # blank message, which the notebook's rule ("without text") refuses.
        for bad, why in ((f"/msg {bob.name}", None),
                         (f"/msg {bob.name}   ", "text of only spaces is no text"),
                         ("/msg", None)):
            alice.say(bad.encode() + b"\n")
            line = _next_line(alice)
            check(line == "! usage: /msg NAME TEXT",
                  _wrong(f"the sender of {bad!r}", line or "", "! usage: /msg NAME TEXT", why))
        seen = _sync([alice, bob, carol], carol)
        check(seen[bob.name] == [] and seen[carol.name] == [],
              "a /msg that was refused reached another client.")
    passed("/msg NAME TEXT reaches NAME only, the sender gets a copy, and mistakes are explained")


# -- Exercise 3: a bot, against the real server -----------------------------------

#: The questions the bot knows, and its answers.  A question is a whole message,
#: compared after stripping spaces and lowering case.
FAQ = {
    "when is the break?": "the break is at 10:30",
    "where are the slides?": "the slides are on the course website",
    "how do i leave?": "type /quit",
}
#: The bot's name in the chat.
BOT_NAME = "bot"
#: Seconds the bot may take to answer, and to return once the server stops.
BOT_WAIT = 2.0


def check_bot(bot):
    """Run bot(address) against the real course chat server on both implementations.

    The bot connects, takes the name BOT_NAME with /nick, and answers each
    FAQ question anyone asks with 'NAME: ANSWER' (NAME the asker's name at
    the time).  It ignores every other line, and returns when the server
    closes the connection.
    """
    check(callable(bot), "pass the bot function itself.")
    require_filled_in(bot, getattr(bot, "__name__", "the bot"))
    from sockserv.examples.chat import make_server
    from .harness import IMPLEMENTATIONS
    for label, impl in IMPLEMENTATIONS.items():
        _check_bot_on(label, make_server(LOCALHOST, impl=impl), bot)
    passed("the bot answers the questions it knows, ignores the rest, and leaves when "
           "the server stops, on stdlib and on sockserv")


def _check_bot_on(label, server, bot):
    loop = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,),
                            name="lesson07 chat", daemon=True)
    loop.start()
    outcome = {}

    def run():
        try:
            bot(server.server_address)
        except BaseException as error:  # reported by the check
            outcome["error"] = error

    runner = threading.Thread(target=run, name="lesson07 bot", daemon=True)
    student = None
    try:
        runner.start()
        deadline = time.monotonic() + BOT_WAIT
        while BOT_NAME not in server.registry.names() and time.monotonic() < deadline:
            check(runner.is_alive() or "error" in outcome,
                  f"on {label} the bot returned before it had taken the name {BOT_NAME!r}.")
            time.sleep(0.01)
        if "error" in outcome:
            raise ExerciseFailed(f"on {label} the bot raised {describe_error(outcome['error'])}.")
        check(BOT_NAME in server.registry.names(),
              f"on {label} nobody called {BOT_NAME!r} was in the chat {BOT_WAIT:g} s after "
              f"the bot started: send b'/nick {BOT_NAME}'.")
        student = socket.create_connection(server.server_address, timeout=BOT_WAIT)
        reader = student.makefile("rb")     # closed with the socket, in finally
        welcome = reader.readline().decode()
        name = welcome.removeprefix("* welcome ").strip()

        def said(text):
            student.sendall(text.encode() + b"\n")

        def read_until(wanted, what):
            """Lines up to wanted (excluded); ExerciseFailed if it does not come in time."""
            lines = []
            try:
                while (line := reader.readline().decode().rstrip("\n")) != wanted:
                    check(line != "", f"on {label} the server closed the student's connection.")
                    lines.append(line)
            except TimeoutError:
                said_by_bot = [line for line in lines if line.startswith(f"{BOT_NAME}: ")]
                raise ExerciseFailed(
                    f"on {label} the bot did not answer {what} within {BOT_WAIT:g} s with "
                    f"{wanted!r}, it said {preview(' | '.join(said_by_bot) or 'nothing', 70)}"
                    f": compare the message text after 'NAME: ', stripped and lower-cased, "
                    f"and answer the name it came from.") from None
            return lines

        said("  When is the BREAK?  ")
        read_until(f"{BOT_NAME}: {name}: {FAQ['when is the break?']}", "'  When is the BREAK?  '")
        # The bot reads lines in order: an answer to the unknown question would
        # come before the answer to the known one that follows it.
        said("what is the wifi password?")
        said("/nick student")
        said("how do i leave?")
        between = read_until(f"{BOT_NAME}: student: {FAQ['how do i leave?']}",
                             "'how do i leave?' after a rename to student")
        extra = [line for line in between if line.startswith(f"{BOT_NAME}: ")]
        check(not extra, f"on {label} the bot said {preview(extra[0], 60) if extra else ''} "
                         f"to a question it does not know: answer only FAQ questions.")
    except (OSError, TimeoutError) as error:
        raise ExerciseFailed(f"on {label} the student's connection failed with "
                             f"{describe_error(error)}.") from None
    finally:
        if student is not None:
            reader.close()
            student.close()
        server.stop()
        loop.join(CLIENT_TIMEOUT)
        runner.join(BOT_WAIT)
    check(not runner.is_alive(),
          f"on {label} the bot had not returned {BOT_WAIT:g} s after the server closed "
          f"its connection: stop when readline() returns b''.")
    if "error" in outcome:
        raise ExerciseFailed(f"on {label} the bot raised {describe_error(outcome['error'])}.")
