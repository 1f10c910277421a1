"""The chat server's classroom-safety rules (docs/chat-protocol.md, "Safety in a shared room").

Each rule is tested through real sockets on 127.0.0.1 against an in-process server, on both
engines (the `impl` fixture: stdlib, sockserv and asyncio), with the hostile input a student
could send: escape codes, CR spoofing, bidi controls, telnet negotiation and telnet's Ctrl-C,
bytes trickled without a newline, a thousand lines in one write, one client too many.  Each
hostile test ends by checking that nothing reached the other clients and that the server still
serves (`assert_recovered`).

No test sleeps to let something happen.  The flood rule's time is a FakeClock the test moves
by hand; the idle rule uses a short timeout, the trickling client paced by its own reads.
"""

import threading
import time
import unicodedata

import pytest
from test_chat import TIMEOUT, chat, impl, start_chat  # noqa: F401 (fixtures)

from sockserv.examples.chat_clean import BIDI_CONTROLS
from sockserv.examples.chat_telnet import DO, DONT, IAC, IP, SB, SE, TIMING_MARK, WILL, WONT


class FakeClock:
    """A monotonic clock that moves only when told to (read from the server's threads)."""

    def __init__(self):
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            return self.now

    def advance(self, seconds):
        with self._lock:
            self.now += seconds


def read_bytes(client, wanted):
    """Read raw bytes from client until wanted has arrived; take wanted out of the buffer and
    return what was buffered before it (which stays buffered, to be read as lines)."""
    while (at := client.buffer.find(wanted)) < 0:
        assert not client.eof and client.feed(), f"closed; got {client.buffer!r}"
    before = bytes(client.buffer[:at])
    del client.buffer[at:at + len(wanted)]
    return before


def no_terminal_controls(line):
    """True if line has no character that a terminal would obey instead of print."""
    return not any(unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS for c in line)


# --- control characters --------------------------------------------------------------------

@pytest.mark.parametrize("sent, relayed", [
    (b"\x1b[2J\x1b[Hcleared?\x07", "[2J[Hcleared?"),              # clear screen, bell
    (b"\x1b]0;pwned\x07title", "]0;pwnedtitle"),                  # set the window title
    (b"ok\rguest2: I cheat", "okguest2: I cheat"),                # CR spoofing a line
    (b"back\x08\x08\x08\x08\x7fspace", "backspace"),              # BS, DEL
    (b"nul\x00 and \xc2\x9b31m C1 CSI", "nul and 31m C1 CSI"),    # NUL; U+009B (C1)
    ("\u202eevil\u202c \u2066iso\u2069".encode(), "evil iso"),  # bidi override, isolate
    (b"a\tb\t\tc", "a b  c"),                                     # TAB is one space
    ("caf\u00e9 \u2603 \U0001f600".encode(), "caf\u00e9 \u2603 \U0001f600"),  # kept
])
def test_control_characters_never_reach_anyone(chat, sent, relayed):
    alice, bob = chat.crowd(2)
    alice.send(sent + b"\n")
    line = bob.read_line()
    assert line == f"guest1: {relayed}"
    assert alice.read_line() == line
    assert no_terminal_controls(line)
    assert bob.ping() == []
    chat.assert_recovered()


def test_a_lone_carriage_return_cannot_fake_a_second_line(chat):
    alice, bob = chat.crowd(2)
    alice.send(b"hi\r\rguest2: /quit\r\n")
    assert bob.read_line() == "guest1: higuest2: /quit"
    assert bob.ping() == []
    chat.assert_recovered()


@pytest.mark.parametrize("blank", [b"\x1b\n", b"\x07\x07\r\n", b"\t\t\n", "\u202e\n".encode(),
                                   b"\x00 \x7f\n"])
def test_a_line_empty_once_cleaned_gets_no_answer(chat, blank):
    alice, bob = chat.crowd(2)
    alice.send(blank)
    assert alice.ping() == []
    assert bob.ping() == []


def test_command_arguments_are_cleaned_too(chat):
    alice, bob = chat.crowd(2)
    alice.send(b"/nick bo\x1bb\n")
    assert alice.read_line() == bob.read_line() == "* guest1 is now bob"
    alice.send(b"/pi\x00ng\n")          # a control character inside a command's name
    assert alice.read_line() == "* pong"


# --- telnet --------------------------------------------------------------------------------

@pytest.mark.parametrize("offer, refusal", [
    (bytes((IAC, DO, 1)), bytes((IAC, WONT, 1))),           # DO ECHO -> WONT ECHO
    (bytes((IAC, WILL, 3)), bytes((IAC, DONT, 3))),         # WILL SUPPRESS-GO-AHEAD -> DONT
    (bytes((IAC, DO, 10)), bytes((IAC, WONT, 10))),         # an option byte that is b"\n"
    (bytes((IAC, WILL, 31, IAC, DO, 24)), bytes((IAC, DONT, 31, IAC, WONT, 24))),
])
def test_telnet_offers_are_refused_and_reach_nobody(chat, offer, refusal):
    alice, bob = chat.crowd(2)
    alice.send(b"hel" + offer + b"lo\n")
    assert read_bytes(alice, refusal) == b""
    assert alice.read_line() == bob.read_line() == "guest1: hello"
    assert bob.ping() == []
    chat.assert_recovered()


def test_telnet_refusals_and_other_commands_get_no_answer(chat):
    alice, bob = chat.crowd(2)
    # WONT, DONT, NOP (241), GA (249), AYT (246), a subnegotiation with a newline inside it.
    alice.send(bytes((IAC, WONT, 1, IAC, DONT, 1, IAC, 241, IAC, 249, IAC, 246))
               + b"sub" + bytes((IAC, SB, 24, 0)) + b"xterm\n" + bytes((IAC, IAC, IAC, SE))
               + b"neg\n")
    assert alice.read_line() == "guest1: subneg"        # no refusal bytes before it
    assert bob.read_line() == "guest1: subneg"
    assert bob.ping() == []


def test_a_telnet_command_split_across_writes_is_still_removed(chat):
    alice, bob = chat.crowd(2)
    for piece in [b"a", bytes((IAC,)), bytes((DO,)), bytes((1,)), b"b", bytes((IAC,)),
                  bytes((SB,)), b"x", bytes((IAC,)), bytes((SE,)), b"c\n"]:
        alice.send(piece)
        assert alice.sock.getsockname()     # (each piece its own write, TCP_NODELAY aside)
    assert read_bytes(alice, bytes((IAC, WONT, 1))) == b""
    assert bob.read_line() == "guest1: abc"


def test_iac_iac_is_a_literal_0xff_which_is_not_utf8(chat):
    alice, bob = chat.crowd(2)
    alice.send(b"x" + bytes((IAC, IAC)) + b"y\n")
    assert bob.read_line() == "guest1: x\ufffdy"


def test_telnet_ctrl_c_ends_that_client_like_quit(chat):
    alice, bob = chat.crowd(2)
    # What telnet sends for Ctrl-C: IAC IP, then IAC DO TIMING-MARK; here after half a line.
    alice.send(b"half a li" + bytes((IAC, IP, IAC, DO, TIMING_MARK)) + b"ne\nafter\n")
    assert alice.read_to_eof() == []
    assert bob.read_line() == "* guest1 left"
    assert bob.ping() == []
    chat.assert_recovered()


def test_lines_before_telnet_ctrl_c_are_served(chat):
    alice, bob = chat.crowd(2)
    alice.send(b"first\n" + bytes((IAC, IP)))
    assert bob.read_line() == "guest1: first"
    assert bob.read_line() == "* guest1 left"
    assert alice.read_to_eof() == ["guest1: first"]


# --- idle means no complete line -----------------------------------------------------------

def test_a_client_trickling_bytes_without_a_newline_is_timed_out(start_chat):
    idle_timeout = 1.0
    chat = start_chat(idle_timeout=idle_timeout)
    trickler, bob = chat.crowd(2)
    trickler.sock.settimeout(0.05)
    sent_at = []
    heard = []
    deadline = time.monotonic() + TIMEOUT
    # One byte every 0.05 s or so (paced by the read timeout), never a newline, until the
    # server hangs up; bob pings meanwhile, so that he is never idle himself.
    while not trickler.eof and time.monotonic() < deadline:
        heard += bob.ping()
        try:
            trickler.send(b"x")
            sent_at.append(time.monotonic())
        except OSError:         # the server hung up between two bytes
            break
        try:
            trickler.feed()
        except TimeoutError:
            pass
    trickler.sock.settimeout(TIMEOUT)
    # It did trickle, and never paused as long as the idle timeout: had its bytes counted
    # as activity, it would never have been timed out.  (A machine so busy that this loop
    # stalled for a whole second proves nothing either way: the message says so.)
    gaps = [later - earlier for earlier, later in zip(sent_at, sent_at[1:])]
    assert len(sent_at) >= 3 and max(gaps) < idle_timeout, \
        f"the trickle paused: {len(sent_at)} bytes, longest gap {max(gaps, default=0):.2f} s"
    assert trickler.read_to_eof() == ["* idle timeout"]
    heard += bob.ping()
    assert heard == ["* guest1 left"]
    chat.assert_recovered()


# --- too many clients ----------------------------------------------------------------------

def test_one_client_too_many_gets_server_full_and_nobody_sees_it(start_chat):
    chat = start_chat(max_clients=3)
    clients = chat.crowd(3)
    for _ in range(3):                          # again and again: never let in, never seen
        extra = chat.connect()
        assert extra.read_to_eof() == ["! server full"]
    for client in clients:
        assert client.ping() == []
    clients[0].close()
    for client in clients[1:]:
        assert client.read_line() == f"* {clients[0].name} left"
    newcomer = chat.join()                      # a seat is free again
    assert newcomer.name == "guest4"
    for client in clients[1:]:
        assert client.read_line() == "* guest4 joined"
    assert chat.connect().read_to_eof() == ["! server full"]
    chat.assert_recovered()


# --- floods --------------------------------------------------------------------------------

# The tests below move the clock only once the server has judged every line sent so far.
# A line that is dropped gives no sign, so each write ends with a telnet offer, SYNC: the
# server answers it (REFUSAL) only after the whole chunk's lines have been through the
# flood limiter (chat_input judges a chunk's lines before the handler sends anything back).
SYNC, REFUSAL = bytes((IAC, DO, 1)), bytes((IAC, WONT, 1))


def test_a_thousand_lines_in_one_write_are_cut_to_the_burst(start_chat):
    clock = FakeClock()
    chat = start_chat(rate=1, burst=5, clock=clock)
    alice, bob = chat.crowd(2)
    alice.send(b"".join(f"m{number}\n".encode() for number in range(1000)) + SYNC)
    read_bytes(alice, REFUSAL)
    expected = [f"guest1: m{number}" for number in range(5)]
    assert [bob.read_line() for _ in range(5)] == expected
    # The bucket is empty and the clock stands still: alice is not heard, but bob, with his
    # own bucket, is.
    assert bob.ping() == []
    clock.advance(1.0)                          # one token back, and a second has passed
    assert alice.ping() == expected + ["! slow down"]      # one warning for 995 lines
    assert bob.ping() == []
    chat.assert_recovered()


def test_slow_down_is_sent_at_most_once_per_second(start_chat):
    clock = FakeClock()
    chat = start_chat(rate=1, burst=1, clock=clock)
    alice = chat.join()
    alice.send(b"a\nb\nc\n" + SYNC)             # b and c find the bucket empty: one warning
    read_bytes(alice, REFUSAL)
    assert alice.read_line() == "guest1: a"
    assert alice.read_line() == "! slow down"
    clock.advance(0.5)                          # half a token; half a second
    alice.send(b"d\n" + SYNC)                   # dropped, and no second warning yet
    read_bytes(alice, REFUSAL)
    clock.advance(0.5)                          # one token; a second since the warning
    alice.send(b"/ping\n" + SYNC)
    read_bytes(alice, REFUSAL)
    assert alice.read_line() == "* pong"        # nothing between: d was dropped silently
    alice.send(b"e\n" + SYNC)                   # empty again, a second later: warned again
    read_bytes(alice, REFUSAL)
    assert alice.read_line() == "! slow down"


def test_a_dropped_command_is_not_run(start_chat):
    clock = FakeClock()
    chat = start_chat(rate=1, burst=1, clock=clock)
    alice, bob = chat.crowd(2)
    alice.send(b"/ping\n/nick alice\n/quit\n" + SYNC)   # the ping takes the only token
    read_bytes(alice, REFUSAL)
    assert alice.read_line() == "* pong"
    assert alice.read_line() == "! slow down"
    clock.advance(1.0)
    alice.send(b"/who\n")
    assert alice.read_line() == "* users: guest1, guest2"  # not renamed, still connected
    assert bob.ping() == []


def test_empty_lines_cost_no_token(start_chat):
    clock = FakeClock()
    chat = start_chat(rate=1, burst=2, clock=clock)
    alice, bob = chat.crowd(2)
    alice.send(b"\n \n\x1b\n" * 100 + b"one\ntwo\n")
    assert bob.read_line() == "guest1: one"
    assert bob.read_line() == "guest1: two"
    clock.advance(1.0)
    assert alice.ping() == ["guest1: one", "guest1: two"]   # no warning: nothing dropped


def test_rate_0_turns_the_limit_off(start_chat):
    chat = start_chat(rate=0)
    alice, bob = chat.crowd(2)
    alice.send(b"".join(f"m{number}\n".encode() for number in range(1000)))
    assert [bob.read_line() for _ in range(1000)] == \
        [f"guest1: m{number}" for number in range(1000)]
    assert alice.read_until("guest1: m999") == [f"guest1: m{n}" for n in range(999)]
    assert alice.ping() == []


def test_the_default_limit_lets_a_classroom_burst_through(chat):
    alice, bob = chat.crowd(2)
    alice.send(b"".join(f"m{number}\n".encode() for number in range(30)))   # --burst 30
    assert [bob.read_line() for _ in range(30)] == [f"guest1: m{n}" for n in range(30)]
