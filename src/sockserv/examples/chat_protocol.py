"""The chat protocol's words: what a client line means, and every line the server may send.

This module knows nothing about sockets or threads.  It turns the bytes of one client line into
a `Command`, checks nicknames, and holds the one table of server lines, `LINES`, so that the
server can only ever send what the protocol page (docs/chat-protocol.md) lists; a test checks
that the page shows every entry of the table, word for word.

A client line is read as bytes, up to and including its b"\\n"; `decode_line` drops the b"\\n"
and one b"\\r" before it and decodes UTF-8, replacing invalid bytes with U+FFFD so that no
input can make the server fail.  `parse` then sorts the text into one of the command kinds:

    text            what the client sent            the server's answer
    ----            ------------------------        -------------------
    ""  / "   "     nothing (only white space)      nothing
    "hello"         a chat message                  "NAME: hello" to everyone
    "/nick bob"     rename                          "* OLD is now bob" to everyone, or "! ..."
    "/who"          list users                      "* users: A, B" to the sender
    "/ping"         liveness check                  "* pong" to the sender
    "/help"         list commands                   "* commands: ..." to the sender
    "/quit", "quit" leave                           the connection is closed
    "/other"        unknown command                 "! unknown command" to the sender

A command is the word after the "/" up to the first space; commands are lower case and
case-sensitive.  Commands other than /nick ignore whatever follows their name.
"""

import re
from typing import NamedTuple

__all__ = ["LINES", "NICK_RULE", "Command", "decode_line", "parse", "check_nick", "render",
           "doc_form"]


# Every line the server can send, by purpose.  Placeholders are upper-case words in braces so
# that the protocol page can show a template by dropping the braces: "* welcome {NAME}" is
# written there as "* welcome NAME".
LINES = {
    # notices
    "welcome": "* welcome {NAME}",
    "joined": "* {NAME} joined",
    "left": "* {NAME} left",
    "renamed": "* {OLD} is now {NEW}",
    "users": "* users: {NAMES}",
    "pong": "* pong",
    "help": "* commands: /nick NAME, /who, /ping, /help, /quit",
    "idle": "* idle timeout",
    "shutdown": "* server shutting down",
    # chat messages
    "message": "{NAME}: {TEXT}",
    # errors, to the sender only
    "too_long": "! line too long",
    "unknown": "! unknown command",
    "nick_usage": "! usage: /nick NAME",
    "nick_invalid": "! invalid name: use 1-20 of A-Z a-z 0-9 _ -",
    "nick_taken": "! name taken",
    "nick_same": "! that is already your name",
}

NICK_RULE = re.compile(r"[A-Za-z0-9_-]{1,20}")


def render(kind, **fields):
    """Return the encoded server line for LINES[kind], newline included."""
    return (LINES[kind].format(**fields) + "\n").encode("utf-8")


def doc_form(template):
    """Return a template as the protocol page writes it: "* {NAME} left" -> "* NAME left"."""
    return template.replace("{", "").replace("}", "")


class Command(NamedTuple):
    """One parsed client line: kind is "say", "nick", "who", "ping", "help", "quit",
    "unknown" or "nothing"; arg is the message text or the wanted name ("" otherwise)."""

    kind: str
    arg: str = ""


_SIMPLE_COMMANDS = {"who", "ping", "help", "quit"}


def decode_line(raw):
    """Return the text of one received line (bytes ending b"\\n") as str."""
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    # "replace", not "strict": a student's terminal in Latin-1 must not be able to kill us.
    return raw.decode("utf-8", "replace")


def parse(text):
    """Return the Command that a decoded client line asks for."""
    if not text.strip():
        return Command("nothing")
    if text.strip() == "quit":
        return Command("quit")
    if not text.startswith("/"):
        return Command("say", text)
    word, _, rest = text[1:].partition(" ")
    if word == "nick":
        return Command("nick", rest.strip())
    if word in _SIMPLE_COMMANDS:
        return Command(word)
    return Command("unknown")


def check_nick(wanted, current, taken):
    """Return the LINES kind of the error for renaming current to wanted, or None if allowed.

    taken is a container of the names in use (current's own name included).
    """
    if not wanted:
        return "nick_usage"
    if not NICK_RULE.fullmatch(wanted):
        return "nick_invalid"
    if wanted == current:
        return "nick_same"
    if wanted in taken:
        return "nick_taken"
    return None
