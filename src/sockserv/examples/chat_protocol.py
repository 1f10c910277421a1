"""The chat protocol's words: what a client line means, every line the server may send, limits.

This module knows nothing about sockets or threads.  It turns the bytes of one client line into
a `Command`, checks nicknames, holds the one table of server lines, `LINES`, so that the
server can only ever send what the protocol page (docs/chat-protocol.md) lists (a test checks
that the page shows every entry of the table, word for word), and the default `LIMITS`.

The way from bytes to a command, one small module per step, each free of I/O so that any
server implementation (threads today, asyncio later) can share them:

    chat_telnet.TelnetFilter   remove telnet commands (IAC ...), answer offers, see Ctrl-C
    chat_framing.LineFramer    cut the stream into lines of at most max_line bytes
    decode_line (here)         drop the line's b"\\r", decode UTF-8 (bad bytes -> U+FFFD)
    chat_clean.clean           remove control characters; TAB becomes a space
    parse (here)               the Command the cleaned text asks for
    chat_bucket.FloodLimiter   may this client's line be run now?

`parse` sorts the text into one of the command kinds:

    text            what the client sent            the server's answer
    ----            ------------------------        -------------------
    ""  / "   "     nothing (only spaces)           nothing
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

__all__ = ["LINES", "LIMITS", "Limits", "check_limits", "NICK_RULE", "Command", "decode_line", "parse",
           "check_nick", "render", "doc_form"]


class Limits(NamedTuple):
    """The classroom limits, with their defaults (the command line's options of that name)."""

    max_line: int = 4096            # bytes in one line, before its newline
    idle_timeout: float = 300.0     # seconds without a complete line
    max_clients: int = 500          # clients connected at once
    rate: float = 10.0              # lines per second refilled into each bucket; 0: no limit
    burst: int = 30                 # the bucket's size


LIMITS = Limits()


def check_limits(max_line, idle_timeout, max_clients, rate, burst):
    """Raise ValueError, naming the option, if a limit makes no sense (every server's check)."""
    if max_line < 1:
        raise ValueError(f"max_line must be at least 1, not {max_line}")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
    if max_clients < 1:
        raise ValueError(f"max_clients must be at least 1, not {max_clients}")
    if rate < 0 or burst < 1:
        raise ValueError(f"rate must be 0 or more and burst at least 1, not {rate}, {burst}")


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
    "teacher": "* teacher: {TEXT}",
    "removed": "* you have been removed",
    # chat messages
    "message": "{NAME}: {TEXT}",
    # errors, to the sender only
    "too_long": "! line too long",
    "unknown": "! unknown command",
    "nick_usage": "! usage: /nick NAME",
    "nick_invalid": "! invalid name: use 1-20 of A-Z a-z 0-9 _ -",
    "nick_taken": "! name taken",
    "nick_same": "! that is already your name",
    "full": "! server full",
    "slow_down": "! slow down",
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
    """Return the text of one received line (bytes, with or without its b"\\n") as str."""
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
