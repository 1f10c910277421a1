"""The chat's I/O-free pieces on their own: cleaner, telnet filter, framer, bucket, input.

These are the modules an asyncio server will share with the threaded one, so their contracts
are pinned here without sockets; tests/test_chat_safety.py checks the same rules end to end.
"""

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockserv.examples.chat_bucket import DROP, PASS, WARN, FloodLimiter, TokenBucket
from sockserv.examples.chat_clean import BIDI_CONTROLS, clean, is_removed
from sockserv.examples.chat_framing import LineFramer
from sockserv.examples.chat_input import ChatInput
from sockserv.examples.chat_protocol import Command
from sockserv.examples.chat_telnet import DO, DONT, IAC, IP, SB, SE, WILL, WONT, TelnetFilter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_clean_removes_exactly_cc_and_the_bidi_controls():
    removed = {chr(code) for code in range(sys.maxunicode + 1) if is_removed(chr(code))}
    cc = {chr(code) for code in range(sys.maxunicode + 1)
          if unicodedata.category(chr(code)) == "Cc"}
    assert removed == (cc - {"\t"}) | BIDI_CONTROLS
    assert len(cc) == 65 and len(BIDI_CONTROLS) == 9


def test_clean_turns_tab_into_one_space_and_keeps_the_rest():
    assert clean("a\tb\x1b[31mc\r\u202ed\u2069\ufffd\u00e9") == "a b[31mcd\ufffd\u00e9"


def feed_split(data, cuts):
    """Feed data to a new TelnetFilter in pieces cut at the given offsets; join results."""
    telnet = TelnetFilter()
    out, replies, interrupted = b"", b"", False
    for start, end in zip([0, *cuts], [*cuts, len(data)]):
        result = telnet.feed(data[start:end])
        out, replies = out + result.data, replies + result.replies
        interrupted = interrupted or result.interrupted
    return out, replies, interrupted


TELNET_STREAM = bytes([ord("a"), IAC, DO, 1, ord("b"), IAC, WILL, 3, IAC, WONT, 5, IAC, DONT, 6,
                       IAC, IAC, IAC, 241, IAC, SB, 24, 10, IAC, IAC, 1, IAC, SE, ord("\n")])


def test_telnet_filter_removes_commands_and_refuses_offers():
    assert feed_split(TELNET_STREAM, []) == (
        b"ab\xff\n", bytes([IAC, WONT, 1, IAC, DONT, 3]), False)


@given(st.lists(st.integers(0, len(TELNET_STREAM)), max_size=6).map(sorted))
def test_telnet_filter_gives_the_same_result_however_the_stream_is_cut(cuts):
    assert feed_split(TELNET_STREAM, cuts) == feed_split(TELNET_STREAM, [])


def test_telnet_interrupt_stops_the_stream():
    data = b"ab" + bytes([IAC, IP, IAC, DO, 6]) + b"cd\n"
    assert feed_split(data, []) == (b"ab", b"", True)
    assert feed_split(data, [3]) == (b"ab", b"", True)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_telnet_filter_never_passes_more_than_it_gets(data):
    out, replies, _ = feed_split(data, [len(data) // 2])
    assert len(out) <= len(data) and len(replies) <= len(data) * 3
    if IAC not in data:
        assert out == data and replies == b""


def test_framer_holds_at_most_max_line_bytes():
    framer = LineFramer(4)
    assert framer.feed(b"ab\ncd") == ([b"ab"], False)
    assert framer.pending == 2
    assert framer.feed(b"ef\n") == ([b"cdef"], False)
    assert framer.feed(b"abcd") == ([], False)          # exactly max_line: still a line
    assert framer.feed(b"e") == ([], True)              # one more byte: too long
    assert framer.pending == 0 and framer.feed(b"\n") == ([], True)


def test_framer_serves_lines_before_a_too_long_one():
    assert LineFramer(3).feed(b"a\nb\ntoolong\nc\n") == ([b"a", b"b"], True)


def test_token_bucket_refills_at_rate_up_to_burst():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5                                     # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now = 100.0
    assert bucket.tokens == 3


def test_flood_limiter_warns_at_most_once_per_second():
    clock = Clock()
    limiter = FloodLimiter(rate=1, burst=1, clock=clock)
    assert [limiter.check() for _ in range(3)] == [PASS, WARN, DROP]
    clock.now = 0.99                                    # 0.99 tokens, 0.99 s since the warning
    assert limiter.check() == DROP
    clock.now = 1.0                                     # a token, and a second since it
    assert limiter.check() == PASS and limiter.check() == WARN


def test_flood_limiter_rate_0_never_limits():
    limiter = FloodLimiter(rate=0, burst=1, clock=Clock())
    assert {limiter.check() for _ in range(1000)} == {PASS}


@pytest.mark.parametrize("rate, burst", [(-1, 5), (1, 0)])
def test_token_bucket_rejects_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_chat_input_chains_the_steps():
    incoming = ChatInput(max_line=10, rate=1, burst=2, clock=Clock())
    actions = incoming.feed(b"hi\x1b\r\n\n/n" + bytes([IAC, DO, 1]) + b"ick\tbob\nmore\n")
    assert actions.replies == bytes([IAC, WONT, 1])
    assert actions.commands == [Command("say", "hi"), Command("nick", "bob")]
    assert actions.slow_down and actions.saw_line and actions.end == ""
    assert incoming.feed(b"part").saw_line is False
    assert incoming.feed(b"ial line!\n").end == "too_long"
