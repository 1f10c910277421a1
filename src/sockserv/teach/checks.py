"""Exercise checks that say in one sentence what is wrong.

A check either prints one line saying what passed, or raises
``ExerciseFailed`` whose message is a single sentence a learner can act on
("handle() sent b'hi' back, expected b'HI'"), never a bare AssertionError.
"""

__all__ = ["ExerciseFailed", "check", "passed"]


class ExerciseFailed(AssertionError):
    """An exercise's check failed; the message says why in one sentence."""

    def _render_traceback_(self):
        # IPython shows this instead of a traceback: the learner needs the
        # sentence, not the check's internals and the paths of this machine.
        return [f"ExerciseFailed: {self}"]


def check(condition, sentence):
    """Raise ExerciseFailed(sentence) unless condition holds."""
    if not condition:
        raise ExerciseFailed(sentence)


def passed(what):
    """Print the one line that tells the learner a check passed."""
    print(f"Check passed: {what}")
