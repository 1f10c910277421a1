"""One client's input, from received bytes to the things the server must do.

`ChatInput` chains the protocol's steps for one connection (see chat_protocol's docstring):
telnet commands removed and answered, the stream cut into lines of at most max_line bytes,
each line decoded, cleaned of control characters, parsed, and passed through the client's
flood limiter.  It does no I/O and keeps no clock of its own (the limiter's is a parameter),
so a threaded handler and an asyncio one can drive it the same way:

    incoming = ChatInput(max_line=4096, rate=10, burst=30)
    actions = incoming.feed(data)      # for every chunk recv() returns

feed() returns an `Actions`: the telnet replies to send back at once, the Commands to carry
out in order, whether to warn "! slow down", whether at least one complete line arrived (the
idle timer restarts then, and only then), and the reason to end the connection, if any:
"too_long" (a line over max_line) or "interrupt" (telnet's Ctrl-C, IAC IP).  Commands that
came before the end are still to be carried out.

Which lines count: an empty line (empty once cleaned, or only spaces) is nothing and costs
nothing; every other line, message or command, takes one token from the bucket, and a line
that finds it empty is dropped, neither relayed nor run.
"""

import time
from typing import NamedTuple

from .chat_bucket import PASS, WARN, FloodLimiter
from .chat_clean import clean
from .chat_framing import LineFramer
from .chat_protocol import LIMITS, decode_line, parse
from .chat_telnet import TelnetFilter

__all__ = ["Actions", "ChatInput"]


class Actions(NamedTuple):
    """What one feed() asks of the server; see the module docstring."""

    replies: bytes          # telnet refusals, to send to this client
    commands: list          # Commands to carry out, in order
    slow_down: bool         # tell the client "! slow down"
    saw_line: bool          # a complete line arrived: the client is not idle
    end: str                # "", "too_long" or "interrupt"


class ChatInput:
    """The input pipeline of one client; see the module docstring."""

    def __init__(self, max_line=LIMITS.max_line, rate=LIMITS.rate, burst=LIMITS.burst,
                 clock=time.monotonic):
        self._telnet = TelnetFilter()
        self._framer = LineFramer(max_line)
        self._limiter = FloodLimiter(rate, burst, clock)

    def feed(self, data):
        """Take the next received bytes; return the Actions they call for."""
        filtered = self._telnet.feed(data)
        framed = self._framer.feed(filtered.data)
        commands = []
        slow_down = False
        for raw in framed.lines:
            command = parse(clean(decode_line(raw)))
            if command.kind == "nothing":
                continue
            verdict = self._limiter.check()
            if verdict == PASS:
                commands.append(command)
            elif verdict == WARN:
                slow_down = True
        end = "too_long" if framed.too_long else "interrupt" if filtered.interrupted else ""
        return Actions(filtered.replies, commands, slow_down, bool(framed.lines), end)
