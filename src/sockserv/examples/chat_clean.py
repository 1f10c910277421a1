"""What may reach other students: the cleaning of a chat line's text.

A chat server copies one student's text onto everyone else's screen, so whatever a terminal
would *obey* rather than print must never get through: ESC starts the escape codes that clear a
screen or recolour it, CR moves the cursor back so that a line can overwrite (and fake) the one
before it, BS and DEL erase, BEL rings, and the bidirectional controls (U+202A-U+202E,
U+2066-U+2069) make text display in another order than it was typed.

`clean(text)` therefore removes every character of Unicode category Cc (U+0000-U+001F and
U+007F-U+009F) and every bidirectional control, after turning each TAB into one space (a tab
is harmless, and removing it would glue words together).  Everything else stays: accents,
emoji, and U+FFFD, which is what invalid UTF-8 has already become.

Pure text in, text out: no sockets, no threads, shared by every server implementation.
"""

__all__ = ["BIDI_CONTROLS", "clean", "is_removed"]

#: The embedding/override controls (U+202A-U+202E) and the isolates (U+2066-U+2069).
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))

# One str.translate() table does the whole job in C: Cc (U+0000-U+001F, U+007F-U+009F) and the
# bidi controls map to None (removed), TAB to a space.  Cc is exactly those 65 code points
# (unicodedata.category(c) == "Cc"); tests/test_chat_clean.py checks that against unicodedata.
_TABLE = {code: None for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_TABLE.update({ord(char): None for char in BIDI_CONTROLS})
_TABLE[ord("\t")] = " "


def is_removed(char):
    """True if clean() removes char (a str of length 1); TAB is replaced, not removed."""
    return _TABLE.get(ord(char), "") is None


def clean(text):
    """Return text with TABs as spaces and every Cc and bidirectional control removed."""
    return text.translate(_TABLE)
