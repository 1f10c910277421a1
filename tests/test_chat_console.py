"""The teacher's console (sockserv.examples.chat_console) against a real chat server.

The console reads lines from any iterable of text lines and writes to any text stream, so these
tests drive it in process, on every engine (stdlib, sockserv, asyncio); tests/test_cli.py runs it through
`python -m sockserv chat --console` with a real stdin.
"""

import io

from test_chat import chat, impl, start_chat  # noqa: F401 (fixtures)

from sockserv.examples.chat_console import HELP, Console


def run_console(chat, *lines):
    """Run a console over lines against chat's registry; return (its output lines, quits)."""
    out = io.StringIO()
    quits = []
    Console(chat.server.registry, [line + "\n" for line in lines], out,
            lambda: quits.append(True)).run()
    return out.getvalue().splitlines(), len(quits)


def test_who_prints_the_connected_names(chat):
    assert run_console(chat, "who")[0][0] == "users (0): nobody"
    chat.crowd(2)
    output, _ = run_console(chat, "who")
    assert output[0] == "users (2): guest1, guest2"


def test_say_reaches_every_client_cleaned(chat):
    alice, bob = chat.crowd(2)
    output, _ = run_console(chat, "say hello\x1b[2J, class")
    assert alice.read_line() == bob.read_line() == "* teacher: hello[2J, class"
    assert output == ["console: end of input; the server keeps running (Ctrl-C stops it)"]


def test_kick_removes_one_client_and_the_others_are_told(chat):
    alice, bob, carol = chat.crowd(3)
    output, _ = run_console(chat, "kick guest2", "kick guest2", "kick")
    assert output[:3] == ["guest2 removed", "no one is called 'guest2' (who lists the names)",
                          "usage: kick NAME"]
    assert bob.read_to_eof() == ["* you have been removed"]
    assert alice.read_line() == carol.read_line() == "* guest2 left"
    assert alice.ping() == [] and carol.ping() == []
    chat.assert_recovered()


def test_unknown_commands_and_help_print_one_line_and_change_nothing(chat):
    alice, bob = chat.crowd(2)
    output, quits = run_console(chat, "kik guest1", "", "help", "say")
    assert output == [f"unknown command 'kik'; {HELP}", HELP, "usage: say TEXT",
                      "console: end of input; the server keeps running (Ctrl-C stops it)"]
    assert quits == 0
    assert alice.ping() == [] and bob.ping() == []


def test_quit_asks_for_the_stop_and_ends_the_console(chat):
    output, quits = run_console(chat, "quit", "who")
    assert (output, quits) == ([], 1)


def test_end_of_input_ends_the_console_not_the_server(chat):
    output, quits = run_console(chat)
    assert quits == 0 and len(output) == 1
    assert chat.join().ping() == []
