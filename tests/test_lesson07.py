"""Lesson 07's bug tests and exercise checks.

The stages of the chat server are taken from the notebook itself (its class
definitions, nothing else), so these tests check the code the lesson shows:
each bug test must fail, with one sentence naming the mistake, on the first
chat server, and on the later stage that still has the mistake; and pass on
the classroom-ready version.  Each exercise check must pass on the worked
solution (also taken from the notebook) and fail on at least two plausible
wrong answers.  Everything is bounded, and the leak guard in conftest.py
checks that nothing is left behind, whichever way a check ends.
"""

import ast
import json
import linecache
import pathlib
import socket
import threading
import time

import pytest

from lesson_checks import fails_with, passes
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
    "test_stop": "shutdown() and server_close() did not return within 2 s",
}


def test_bug_tests_are_listed_in_order():
    assert list(lesson07.BUG_TESTS.values()) == [getattr(lesson07, name) for name in FIRST_FAILURES]


@pytest.mark.parametrize("name", FIRST_FAILURES)
def test_each_bug_test_fails_on_the_first_chat_server(name):
    fails_with(getattr(lesson07, name), *FIRST, words=FIRST_FAILURES[name])


@pytest.mark.parametrize("stage, name, words", [
    (LOCKED, "test_slow_reader", "give each client its own outbox"),
    (LOCKED, "test_idle_timeout", "catch TimeoutError around readline()"),
    (LOCKED, "test_stop", "did not return within"),
    (OUTBOX, "test_idle_timeout", "give the handler a timeout"),
    (OUTBOX, "test_stop", "tell everyone, then close their connections"),
], ids=["locked-slow", "locked-idle", "locked-stop", "outbox-idle", "outbox-stop"])
def test_a_later_stage_still_fails_what_it_has_not_fixed(stage, name, words):
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


def test_me_solution_passes(capsys):
    passes(lesson07.check_me_action, CLASSROOM[0], NB["SolutionMeHandler"], capsys=capsys)


@pytest.mark.parametrize("answer, words", [
    (NB["MeHandler"], "fill in the ... in MeHandler first."),
    (Classroom, "another client received 'guest"),
    (MeToTheSenderOnly, "an action goes to everyone"),
    (MeStripped, "keep the action's text as it was typed"),
    (MeSplitAndJoined, "keep the action's text as it was typed"),
    (MeEmptyActionSent, "an empty action is not sent"),
], ids=["starter", "unchanged", "sender-only", "stripped", "split", "empty-sent"])
def test_me_check_rejects_wrong_answers(answer, words):
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


def test_msg_solution_passes(capsys):
    passes(lesson07.check_private_message, CLASSROOM[0], NB["SolutionMsgHandler"], capsys=capsys)


@pytest.mark.parametrize("answer, words", [
    (NB["MsgHandler"], "expected its copy"),
    (Classroom, "the addressee received 'guest"),
    (MsgWithoutLookup, "to a name nobody has received"),
    (MsgWithoutCopy, "the sender received ''"),
    (MsgUsageUnchecked, "expected '! usage: /msg NAME TEXT'"),
], ids=["starter", "unchanged", "no-lookup", "no-copy", "no-usage"])
def test_msg_check_rejects_wrong_answers(answer, words):
    fails_with(lesson07.check_private_message, CLASSROOM[0], answer, words=words)


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
def test_bot_check_rejects_wrong_answers(answer, words):
    fails_with(lesson07.check_bot, answer, words=words)


def test_bot_check_rejects_a_bot_that_never_leaves():
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
