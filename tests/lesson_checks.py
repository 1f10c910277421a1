"""What the tests of the lessons' exercise checks share.

Every lesson's checks make the same promise (``sockserv.teach.checks``): a
check either prints one "Check passed" line and nothing else, or raises
``ExerciseFailed`` with one sentence saying what is wrong.  The tests in
tests/test_lessonNN.py hold each check to that promise with the helpers
here, so the promise is written down once:

* ``fails_with(check, *answer, words=...)`` run a check on a wrong answer,
  check that its message is one sentence (and contains ``words``), return it;
* ``passes(check, *answer, capsys=...)`` run a check on a right answer,
  check that it printed the one line and nothing on stderr, return the line;
* ``short_bounds_for(lesson, client, stop)`` a fixture that shortens a
  lesson's bounds, so that a hang is reported quickly in a test;
* ``BOTH`` parametrize a test over both implementations (ids ``stdlib`` and
  ``sockserv``);
* ``accepted_pair()`` a connected (client, server-side) pair on 127.0.0.1.

Imported as ``from lesson_checks import ...``, the way the core tests import
``helpers`` (pytest puts tests/ on sys.path: it has no __init__.py).
"""

import re
import socket

import pytest

from sockserv.teach.checks import ExerciseFailed
from sockserv.teach.harness import IMPLEMENTATIONS, LOCALHOST

#: Parametrize a test over both implementations, by label: ``test_x[stdlib]``.
BOTH = pytest.mark.parametrize("impl", list(IMPLEMENTATIONS.values()),
                               ids=list(IMPLEMENTATIONS))


def assert_one_sentence(message):
    """Assert that message is one sentence for a learner: one line, one full stop, no traceback."""
    assert "\n" not in message and message.endswith("."), message
    # No second sentence: no full stop followed by a capital, and (but for the
    # "..." placeholder a message may name) no full stop followed by a space.
    assert not re.search(r"\.\s+[A-Z]", message), message
    assert message.replace("...", "").count(". ") == 0, message
    assert "Traceback" not in message, message


def fails_with(check, *answer, words=None):
    """Run check(*answer), which must fail; return its message, checked to be one sentence.

    words, if given, must be in the message.
    """
    with pytest.raises(ExerciseFailed) as caught:
        check(*answer)
    message = str(caught.value)
    if words is not None:
        assert words in message, message
    assert_one_sentence(message)
    return message


def passes(check, *answer, capsys):
    """Run check(*answer), which must pass; return the one line it printed.

    Nothing may go to stderr: a notebook would show it as an output.
    """
    check(*answer)
    out, err = capsys.readouterr()
    assert out.startswith("Check passed: ") and out.count("\n") == 1, out
    assert err == "", err
    return out


def short_bounds_for(lesson, client, stop):
    """A fixture that sets lesson.CLIENT_TIMEOUT and lesson.STOP_TIMEOUT for one test.

    Use it as ``short_bounds = short_bounds_for(lesson05, client=0.5, stop=0.5)``
    in the test module; a test that asks for ``short_bounds`` then reports a
    hang within those bounds rather than the lesson's own, longer ones.
    """

    @pytest.fixture
    def short_bounds(monkeypatch):
        monkeypatch.setattr(lesson, "CLIENT_TIMEOUT", client)
        monkeypatch.setattr(lesson, "STOP_TIMEOUT", stop)

    return short_bounds


def accepted_pair():
    """(client, server-side connection) on 127.0.0.1; the caller closes both.

    The client has a 5 s timeout; the connection, as accept() returns it, none.
    """
    with socket.socket() as listener:
        listener.bind(LOCALHOST)
        listener.listen()
        listener.settimeout(5)
        client = socket.create_connection(listener.getsockname(), timeout=5)
        conn, _ = listener.accept()
    return client, conn
