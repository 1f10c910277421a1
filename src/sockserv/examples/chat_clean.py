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

import re

__all__ = ["BIDI_CONTROLS", "clean", "is_removed"]

#: The embedding/override controls (U+202A-U+202E) and the isolates (U+2066-U+2069).
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))

# Cc is exactly U+0000-U+001F and U+007F-U+009F (tests/test_chat_units.py checks that against
# unicodedata).  A regular expression rather than str.translate(): on the usual line, which
# has none of these, re.sub() finds nothing and returns at C speed; a translate table is
# looked up for every character (about ten times slower on a line of 50).
_REMOVED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def is_removed(char):
    """True if clean() removes char (a str of length 1); TAB is replaced, not removed."""
    return char != "\t" and _REMOVED.fullmatch(char) is not None


def clean(text):
    """Return text with TABs as spaces and every Cc and bidirectional control removed."""
    return _REMOVED.sub("", text.replace("\t", " "))
