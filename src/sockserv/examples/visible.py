"""Showing what a server sends without letting the terminal obey it.

A client prints whatever arrives, and a terminal obeys control characters: ESC starts escape
codes (clear the screen, move the cursor, change the window title), CR returns to the start of
the line so the next text overwrites it, BS and DEL erase, the bidirectional controls reorder
text.  The course's chat server removes them, but a client can connect to any server, so the
course's client shows them as visible symbols instead of passing them on:

    C0 controls U+0000-U+001F   the Control Pictures U+2400-U+241F ("\\x1b" shows as U+241B)
    DEL U+007F                  U+2421
    C1 controls U+0080-U+009F   written out: \\x9b
    bidi controls               written out: \\u202e

A newline stays a newline, and a CR just before a newline is dropped (CR LF is only the end of
a line).  `VisibleText` does this across chunks, so a CR at the end of one chunk followed by LF
at the start of the next is still a line end.
"""

__all__ = ["VisibleText", "visible"]

_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = {code: chr(0x2400 + code) for code in range(0x20) if code != 0x0A}
_TABLE[0x7F] = "\u2421"
_TABLE.update({code: f"\\x{code:02x}" for code in range(0x80, 0xA0)})
_TABLE.update({code: f"\\u{code:04x}" for code in _BIDI})


def visible(text):
    """Return text with every control character but LF replaced by a visible form."""
    return text.replace("\r\n", "\n").translate(_TABLE)


class VisibleText:
    """visible() for text that arrives in pieces: feed(piece) -> str, then final() -> str."""

    def __init__(self):
        self._cr = False        # the last piece ended with CR: is it the start of CR LF?

    def feed(self, text):
        """Return the visible form of the next piece (a trailing CR is held back)."""
        if self._cr:
            text = "\r" + text
        self._cr = text.endswith("\r")
        if self._cr:
            text = text[:-1]
        return visible(text)

    def final(self):
        """Return what is still held back (a lone CR), at the end of the stream."""
        held, self._cr = self._cr, False
        return visible("\r") if held else ""
