"""Lesson 07's bug tests and exercise checks.

The stages of the chat server are taken from the notebook itself (its class
definitions, nothing else), so these tests check the code the lesson shows:
each bug test must fail, with one sentence naming the mistake, on the first
chat server, and on the later stage that still has the mistake; and pass on
the classroom-ready version.  Each exercise check must pass on the worked
solution (also taken from the notebook) and fail on at least two plausible
wrong answers.  Everything is bounded, and the leak guard in conftest.py
checks that nothing is left behind, whichever way a check ends.

Sooner failures: where a wrong answer fails only when a bound runs out that
it can never meet (a line it never sends, a stop that never returns, a read
that never gets a reply), the test shortens that one bound for itself, so
the same sentence comes in a fraction of a second instead of the lesson's
full wait.  Only such bounds: what the wrong answer must still do first
(connect, be welcomed, hear itself, take a name) keeps the lesson's own
bounds, and so does every run of a right answer; a bound that tells wrong
from right by timing (the slow reader stalls the others for STALL_WAIT s)
is never shortened.
"""

import ast
import json
import linecache
import pathlib
import socket
import threading
import time
import types

import pytest

from lesson_checks import fails_with, passes
from sockserv.examples import chat
from sockserv.teach import lesson07

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "07-chat-server.ipynb"


def _definitions():
    """The notebook's imports, constants, classes and functions, run in one namespace."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    namespace = {"__name__": "lesson07_notebook"}
    for number, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # Under a name of its own, with its source in linecache, as IPython does: the
        # checks read a class's source (inspect.getsource) to find a ... left in it.
        filename = f"<07-chat-server.ipynb cell {number}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        tree = ast.parse(source)
        kept = [node for node in tree.body
                if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef))
                or (isinstance(node, ast.Assign) and
                    [getattr(t, "id", None) for t in node.targets] == ["MAX_LINE"])]
        exec(compile(ast.Module(kept, []), filename, "exec"), namespace)
    return namespace


NB = _definitions()
FIRST = (NB["socketserver"].ThreadingTCPServer, NB["FirstChatHandler"])
LOCKED = (NB["RoomServer"], NB["LockedChatHandler"])
OUTBOX = (NB["OutboxServer"], NB["OutboxChatHandler"])
CLASSROOM = (NB["ClassroomChatServer"], NB["ClassroomChatHandler"])


# -- failing sooner ----------------------------------------------------------------------

#: A shortened bound, in seconds: anything works for a wait that can never end
#: well; this one still leaves a wrong answer's reply, were it to come, time to.
SOON = 0.25


def _shorten(monkeypatch, **bounds):
    """Set lesson07's bounds by name (SETTLE=..., STOP_WAIT=...) for the one test."""
    for name, seconds in bounds.items():
        assert isinstance(getattr(lesson07, name), float), name
        monkeypatch.setattr(lesson07, name, seconds)


def _wait_for_capped(monkeypatch, wanted, seconds=SOON):
    """_Client.wait_for(wanted, ...) waits at most seconds; waits for other bytes are unchanged."""
    wait_for = lesson07._Client.wait_for

    def capped(client, what, limit):
        return wait_for(client, what, min(limit, seconds) if what == wanted else limit)

    monkeypatch.setattr(lesson07._Client, "wait_for", capped)


# -- the bug tests on the stages ------------------------------------------------------

FIRST_FAILURES = {
    "test_silent_client_hears": "register each client when it connects",
    "test_leave_before_speaking": "finish() raised KeyError",
    "test_join_during_broadcast": "RuntimeError('dictionary changed size during iteration')",
    "test_dead_client": "in the sender's handler, and ended it",
    "test_slow_reader": "received only part of the 200 lines",
    "test_framing": "never arrived as one line",
    "test_line_too_long": "did not get b'! line too long\\n'",
    "test_idle_timeout": "was not sent b'* idle timeout\\n' and closed",
    "test_stop": f"shutdown() and server_close() did not return within {SOON:g} s",
}

#: How each bug test fails sooner on the first chat server, where it waits for
#: what that server can never do (every one of these waits comes after the
#: clients have joined, and stops nothing a later step needs).
FIRST_SOONER = {
    # The quiet client never speaks, so it is never registered, so it never hears.
    "test_silent_client_hears": lambda mp: _shorten(mp, SETTLE=SOON),
    # It relays recv(1024) chunks: the 1024-byte line never arrives whole, and
    # it never refuses a line (every wait of this test on it is 4 * SETTLE).
    "test_line_too_long": lambda mp: _shorten(mp, SETTLE=SOON / 4),
    # A BaseRequestHandler ignores ``timeout``: the idle line never comes (the
    # test waits IDLE_TIMEOUT + 1.5 s for it, a sum the test cannot set).
    "test_idle_timeout": lambda mp: _wait_for_capped(mp, lesson07.IDLE_LINE),
    # server_close() waits for the handlers, which wait for clients that stay.
    "test_stop": lambda mp: _shorten(mp, STOP_WAIT=SOON),
}


def test_bug_tests_are_listed_in_order():
    assert list(lesson07.BUG_TESTS.values()) == [getattr(lesson07, name) for name in FIRST_FAILURES]


@pytest.mark.parametrize("name", FIRST_FAILURES)
def test_each_bug_test_fails_on_the_first_chat_server(name, monkeypatch):
    FIRST_SOONER.get(name, lambda mp: None)(monkeypatch)
    fails_with(getattr(lesson07, name), *FIRST, words=FIRST_FAILURES[name])


@pytest.mark.parametrize("stage, name, words", [
    (LOCKED, "test_slow_reader", "give each client its own outbox"),
    (LOCKED, "test_idle_timeout", "catch TimeoutError around readline()"),
    (LOCKED, "test_stop", f"did not return within {SOON:g} s"),
    (OUTBOX, "test_idle_timeout", "give the handler a timeout"),
    (OUTBOX, "test_stop", "tell everyone, then close their connections"),
], ids=["locked-slow", "locked-idle", "locked-stop", "outbox-idle", "outbox-stop"])
def test_a_later_stage_still_fails_what_it_has_not_fixed(stage, name, words, monkeypatch):
    if name == "test_stop":
        # Neither stage has a stop(): server_close() waits for handlers whose clients stay.
        _shorten(monkeypatch, STOP_WAIT=SOON)
    fails_with(getattr(lesson07, name), *stage, words=words)


@pytest.mark.parametrize("stage, names", [
    (LOCKED, ["test_silent_client_hears", "test_leave_before_speaking",
              "test_join_during_broadcast", "test_dead_client", "test_framing",
              "test_line_too_long"]),
    (OUTBOX, ["test_slow_reader"]),
], ids=["locked", "outbox"])
def test_each_fix_passes_its_bug_tests(stage, names, capsys):
    for name in names:
        passes(getattr(lesson07, name), *stage, capsys=capsys)


@pytest.mark.parametrize("name", FIRST_FAILURES)
def test_the_classroom_ready_version_passes_every_bug_test(name, capsys):
    passes(getattr(lesson07, name), *CLASSROOM, capsys=capsys)


def test_a_bug_test_wants_two_classes():
    fails_with(lesson07.test_stop, NB["FirstChatHandler"], NB["FirstChatHandler"],
               words="pass the server class first")


# -- exercise 1: /me ---------------------------------------------------------------

Classroom = NB["ClassroomChatHandler"]


class MeToTheSenderOnly(Classroom):
    def command(self, text):
        if text.startswith("/me "):
            self.tell(f"* {self.name} {text[4:]}")
            return True
        return super().command(text)


class MeStripped(Classroom):
    def command(self, text):
        if text.startswith("/me"):
            self.server.room.broadcast(f"* {self.name} {text[3:].strip()}\n".encode())
            return True
        return super().command(text)


class MeSplitAndJoined(Classroom):
    def command(self, text):
        if text.startswith("/me "):
            self.server.room.broadcast(f"* {self.name} {' '.join(text.split()[1:])}\n".encode())
            return True
        return super().command(text)


class MeEmptyActionSent(Classroom):
    def command(self, text):
        if text.startswith("/me"):
            self.server.room.broadcast(f"* {self.name} {text[4:]}\n".encode())
            return True
        return super().command(text)


class MeSpacesSent(Classroom):
    """Sends nothing for a bare /me, but '/me   ' goes out as an action of spaces."""

    def command(self, text):
        if text == "/me":
            return True
        if text.startswith("/me "):
            self.server.room.broadcast(f"* {self.name} {text[4:]}\n".encode())
            return True
        return super().command(text)


def me_that_keeps(kept, doc):
    """A /me answer that sends ``kept(action)`` when it is not empty, else nothing."""

    class MeKeeping(Classroom):
        def command(self, text):
            if text == "/me" or text.startswith("/me "):
                action = kept(text[4:])
                if action:
                    self.server.room.broadcast(f"* {self.name} {action}\n".encode())
                return True
            return super().command(text)

    MeKeeping.__doc__ = doc
    return MeKeeping


MeTrailingStripped = me_that_keeps(str.rstrip, "Keeps the spaces at the start and inside, drops those at the end.")
MeLeadingStripped = me_that_keeps(str.lstrip, "Drops the spaces between '/me ' and the action's first word.")


def test_me_solution_passes(capsys):
    passes(lesson07.check_me_action, CLASSROOM[0], NB["SolutionMeHandler"], capsys=capsys)


@pytest.mark.parametrize("answer, words", [
    (NB["MeHandler"], "fill in the ... in MeHandler first."),
    (Classroom, "another client received 'guest"),
    (MeToTheSenderOnly, "an action goes to everyone"),
    (MeStripped, "keep the action's text as it was typed"),
    (MeSplitAndJoined, "keep the action's text as it was typed"),
    (MeEmptyActionSent, "an empty action is not sent"),
    (MeSpacesSent, "b'/me   ' reached the others as"),
    (MeTrailingStripped, "every space included"),
    (MeLeadingStripped, "keep the action's text as it was typed"),
], ids=["starter", "unchanged", "sender-only", "stripped", "split", "empty-sent",
        "spaces-sent", "trailing-stripped", "leading-stripped"])
def test_me_check_rejects_wrong_answers(answer, words, monkeypatch):
    if answer is MeToTheSenderOnly:
        # The other client is never sent the action; its wait (4 * SETTLE) is
        # the only use of SETTLE in the check, after the room has met.
        _shorten(monkeypatch, SETTLE=SOON / 4)
    fails_with(lesson07.check_me_action, CLASSROOM[0], answer, words=words)


def test_me_check_rejects_meow_as_an_action():
    class MeowIsAnAction(Classroom):
        def command(self, text):
            if text.startswith("/me"):
                action = text[3:].lstrip(" ") if text.startswith("/me ") else text[3:]
                if text.startswith("/me ") and not action.strip():
                    return True
                if text == "/me":
                    return True
                self.server.room.broadcast(f"* {self.name} {text[4:]}\n".encode())
                return True
            return super().command(text)

    fails_with(lesson07.check_me_action, CLASSROOM[0], MeowIsAnAction,
               words="only '/me ' starts an action")


# -- exercise 2: /msg --------------------------------------------------------------


class MsgWithoutLookup(Classroom):
    def command(self, text):
        if text.startswith("/msg"):
            parts = text.split(" ", 2)
            if len(parts) < 3:
                self.tell("! usage: /msg NAME TEXT")
                return True
            _, name, message = parts
            self.server.room.send_to(name, f"* {self.name} to you: {message}\n".encode())
            self.tell(f"* you to {name}: {message}")
            return True
        return super().command(text)


class MsgWithoutCopy(Classroom):
    def command(self, text):
        if text.startswith("/msg "):
            _, name, message = text.split(" ", 2)
            self.server.room.send_to(name, f"* {self.name} to you: {message}\n".encode())
            return True
        return super().command(text)


class MsgUsageUnchecked(Classroom):
    def command(self, text):
        if text.startswith("/msg "):
            _, name, message = (text.split(" ", 2) + ["", ""])[:3]
            if self.server.room.send_to(name, f"* {self.name} to you: {message}\n".encode()):
                self.tell(f"* you to {name}: {message}")
            else:
                self.tell(f"! no such user: {name}")
            return True
        return super().command(text)


class MsgSpacesAsText(Classroom):
    """Answers a missing name or text with the usage line, but sends text of only spaces."""

    def command(self, text):
        if text == "/msg" or text.startswith("/msg "):
            _, name, message = (text.split(" ", 2) + ["", ""])[:3]
            if not name or not message:
                self.tell("! usage: /msg NAME TEXT")
            elif self.server.room.send_to(name, f"* {self.name} to you: {message}\n".encode()):
                self.tell(f"* you to {name}: {message}")
            else:
                self.tell(f"! no such user: {name}")
            return True
        return super().command(text)


def test_msg_solution_passes(capsys):
    passes(lesson07.check_private_message, CLASSROOM[0], NB["SolutionMsgHandler"], capsys=capsys)


@pytest.mark.parametrize("answer, words", [
    (NB["MsgHandler"], "expected its copy"),
    (Classroom, "the addressee received 'guest"),
    (MsgWithoutLookup, "to a name nobody has received"),
    (MsgWithoutCopy, "the sender received ''"),
    (MsgUsageUnchecked, "expected '! usage: /msg NAME TEXT'"),
    (MsgSpacesAsText, "expected '! usage: /msg NAME TEXT': text of only spaces is no text"),
], ids=["starter", "unchanged", "no-lookup", "no-copy", "no-usage", "spaces-as-text"])
def test_msg_check_rejects_wrong_answers(answer, words, monkeypatch):
    if answer is MsgWithoutCopy:
        # The sender is never sent its copy: its first read is the one that fails.
        _sender_reads_capped(monkeypatch)
    fails_with(lesson07.check_private_message, CLASSROOM[0], answer, words=words)


def _sender_reads_capped(monkeypatch, seconds=SOON):
    """In a check's room, each _next_line() of the first client (the sender) waits at most seconds.

    The others' reads keep the lesson's bound (the addressee does get its line,
    and must, for the check to come to the sender's copy).
    """
    room_of, next_line = lesson07._room_of, lesson07._next_line
    sender = []

    def room_remembering_the_sender(scenario, count):
        clients = room_of(scenario, count)
        sender[:] = clients[:1]
        return clients

    def next_line_capped(client, *limit):
        if any(client is first for first in sender):
            limit = (min(limit[0], seconds),) if limit else (seconds,)
        return next_line(client, *limit)

    monkeypatch.setattr(lesson07, "_room_of", room_remembering_the_sender)
    monkeypatch.setattr(lesson07, "_next_line", next_line_capped)


# -- exercise 3: the bot -----------------------------------------------------------


def bot_case_sensitive(address):
    with socket.create_connection(address) as sock, sock.makefile("rb") as lines:
        sock.sendall(b"/nick bot\n")
        for raw in lines:
            name, sep, message = raw.decode().rstrip("\n").partition(": ")
            if sep and message in lesson07.FAQ:
                sock.sendall(f"{name}: {lesson07.FAQ[message]}\n".encode())


def bot_answers_everything(address):
    with socket.create_connection(address) as sock, sock.makefile("rb") as lines:
        sock.sendall(b"/nick bot\n")
        for raw in lines:
            name, sep, message = raw.decode().rstrip("\n").partition(": ")
            if sep and name != "bot" and not name.startswith("*"):
                answer = lesson07.FAQ.get(message.strip().lower(), "I do not know")
                sock.sendall(f"{name}: {answer}\n".encode())


def bot_without_a_name(address):
    with socket.create_connection(address) as sock, sock.makefile("rb") as lines:
        for raw in lines:
            name, sep, message = raw.decode().rstrip("\n").partition(": ")
            answer = lesson07.FAQ.get(message.strip().lower())
            if sep and answer:
                sock.sendall(f"{name}: {answer}\n".encode())


def test_bot_solution_passes(capsys):
    passes(lesson07.check_bot, NB["solution_faq_bot"], capsys=capsys)


@pytest.mark.parametrize("answer, words", [
    (NB["faq_bot"], "fill in the ... in faq_bot first."),
    (bot_case_sensitive, "stripped and lower-cased"),
    (bot_answers_everything, "to a question it does not know"),
    (bot_without_a_name, "send b'/nick bot'"),
], ids=["starter", "case-sensitive", "answers-everything", "no-nick"])
def test_bot_check_rejects_wrong_answers(answer, words, monkeypatch):
    if answer is bot_without_a_name:
        # Nobody ever takes the name; once the server stops, the bot returns
        # as it should, within the lesson's BOT_WAIT.
        _bot_wait_until_the_stop(monkeypatch, before=SOON, after=lesson07.BOT_WAIT)
    elif answer is bot_case_sensitive:
        # The answer to '  When is the BREAK?  ' never comes; the student's
        # welcome, read before it speaks, keeps the lesson's bound.
        _student_reads_capped_once_it_speaks(monkeypatch)
    fails_with(lesson07.check_bot, answer, words=words)


def _bot_wait_until_the_stop(monkeypatch, before, after):
    """lesson07.BOT_WAIT is before until check_bot stops its chat server, and after from then on.

    Before the stop it bounds the wait for the bot's name and the student's
    reads; after it, the wait for the bot to return.
    """
    make_server = chat.make_server

    def make_server_switching_at_the_stop(*args, **kwargs):
        server = make_server(*args, **kwargs)
        stop = server.stop

        def switch_then_stop():
            monkeypatch.setattr(lesson07, "BOT_WAIT", after)
            stop()

        server.stop = switch_then_stop
        return server

    monkeypatch.setattr(chat, "make_server", make_server_switching_at_the_stop)
    monkeypatch.setattr(lesson07, "BOT_WAIT", before)


class _CappedOnceItSends(socket.socket):
    """A client socket that keeps its timeout until its first send, then has at most ``cap`` s."""

    cap = None

    def sendall(self, data, *flags):
        if self.cap is not None:
            self.settimeout(min(self.gettimeout(), self.cap))
            self.cap = None
        return super().sendall(data, *flags)


def _student_reads_capped_once_it_speaks(monkeypatch, seconds=SOON):
    """check_bot's student connection: its timeout, once it has said something, is seconds.

    Only lesson07's own name ``socket`` sees the change (the bot and the
    server use the real module).
    """
    def create_connection(address, timeout, *args, **kwargs):
        sock = socket.create_connection(address, timeout, *args, **kwargs)
        capped = _CappedOnceItSends(sock.family, sock.type, sock.proto, fileno=sock.detach())
        capped.settimeout(timeout)
        capped.cap = seconds
        return capped

    module = types.SimpleNamespace(**vars(socket))
    module.create_connection = create_connection
    monkeypatch.setattr(lesson07, "socket", module)


def test_bot_check_rejects_a_bot_that_never_leaves(monkeypatch):
    # It answers like a right bot, with the lesson's bounds; only the wait for
    # it to return after the stop, which it never does, is short.
    _bot_wait_until_the_stop(monkeypatch, before=lesson07.BOT_WAIT, after=SOON)
    released = threading.Event()

    def bot_ignores_the_end(address):
        with socket.create_connection(address) as sock:
            sock.sendall(b"/nick bot\n")
            pending = b""
            while not released.is_set():
                data = sock.recv(4096)
                if not data:
                    released.wait(0.05)     # forgets that b'' is the end; the test lets it go
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    name, sep, message = raw.decode().partition(": ")
                    answer = lesson07.FAQ.get(message.strip().lower())
                    if sep and name != "bot" and answer:
                        sock.sendall(f"{name}: {answer}\n".encode())

    try:
        fails_with(lesson07.check_bot, bot_ignores_the_end,
                   words="stop when readline() returns b''")
    finally:
        released.set()
        deadline = time.monotonic() + 5
        while (any(t.name == "lesson07 bot" for t in threading.enumerate())
               and time.monotonic() < deadline):
            time.sleep(0.01)
