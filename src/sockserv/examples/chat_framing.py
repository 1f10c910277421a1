"""Cutting a client's byte stream into lines, never holding more than one line of it.

TCP delivers a stream, not messages: one recv() may bring half a line, or a thousand lines.
`LineFramer(max_line)` collects bytes and hands back complete lines.  It holds at most
max_line bytes of an unfinished line: once more than that has arrived without a b"\\n", the
line is too long and the framer says so (the server then refuses it and hangs up), so however
much a client sends, its unfinished line costs at most max_line bytes of memory.

feed(data) returns `Framed(lines, too_long)`: lines are the complete lines, each without its
b"\\n" (a b"\\r" before it is kept: decoding drops it), and too_long is True when, after those
lines, the unfinished line has grown past max_line.  After too_long the framer takes nothing
more.  The bytes of a line counted against max_line are those before its b"\\n", a b"\\r"
included, after telnet commands have been removed.

No sockets, no threads: it can serve any server implementation.
"""

from typing import NamedTuple

__all__ = ["Framed", "LineFramer"]


class Framed(NamedTuple):
    """The result of LineFramer.feed(): the complete lines, and whether one is too long."""

    lines: list
    too_long: bool


class LineFramer:
    """Turns stream bytes into lines of at most max_line bytes; see the module docstring."""

    def __init__(self, max_line):
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        self.max_line = max_line
        self._partial = bytearray()
        self._failed = False

    @property
    def pending(self):
        """Bytes of the unfinished line held so far."""
        return len(self._partial)

    def feed(self, data):
        """Add data; return the Framed lines it completes."""
        if self._failed:
            return Framed([], True)
        self._partial += data
        *lines, rest = self._partial.split(b"\n")
        too_long = [line for line in lines if len(line) > self.max_line]
        if too_long:
            # Lines before the first one that is too long are served; nothing after it.
            first = lines.index(too_long[0])
            self._fail()
            return Framed([bytes(line) for line in lines[:first]], True)
        if len(rest) > self.max_line:
            self._fail()
            return Framed([bytes(line) for line in lines], True)
        self._partial = bytearray(rest)
        return Framed([bytes(line) for line in lines], False)

    def _fail(self):
        self._failed = True
        self._partial = bytearray()
