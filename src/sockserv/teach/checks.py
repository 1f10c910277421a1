"""Exercise checks that say in one sentence what is wrong.

A check either prints one line saying what passed (``passed()``), or raises
``ExerciseFailed`` whose message is a single sentence a learner can act on
("handle() sent b'hi' back, expected b'HI'."), never a bare AssertionError
and never a traceback.

The one-sentence rule is enforced where the message is made: constructing
an ExerciseFailed with anything else raises TypeError or ValueError, which
is a mistake in the check, so the check's own tests find it.  A sentence is
one line, not empty, ends with a full stop, has no second sentence after
it (a full stop, then a capital) outside quoted values such as ``b'A. B'``,
and contains nothing that looks like a traceback.  Text that comes from the
learner's code goes in through ``describe_error()`` or ``preview()``, which
quote it, so a learner's exception message cannot break the rule.

``require_filled_in()`` is the first thing a check does with the learner's
answer: a ``...`` placeholder left in it gets "fill in the ... in NAME
first.", not a comparison that would send the learner looking elsewhere.
"""

import ast
import inspect
import re
import textwrap

__all__ = ["ExerciseFailed", "check", "passed", "require_filled_in",
           "describe_error", "preview"]

# Quoted values (str and bytes reprs) may contain anything; the apostrophe in
# "server's" is not an opening quote because a letter comes before it.
_QUOTED = re.compile(r"""(?<![A-Za-z0-9_])b?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_SECOND_SENTENCE = re.compile(r"[.!?]\s+[A-Z]")
_TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "[^"]*", line \d+')


def _sentence_problem(sentence):
    """What keeps sentence from being one sentence, or None."""
    if not sentence.strip():
        return "it is empty"
    if "\n" in sentence or "\r" in sentence:
        return "it has a line break"
    if not sentence.endswith("."):
        return "it does not end with a full stop"
    if _TRACEBACK.search(sentence):
        return "it looks like a traceback"
    if _SECOND_SENTENCE.search(_QUOTED.sub("''", sentence)):
        return "a second sentence follows the first"
    return None


class ExerciseFailed(AssertionError):
    """An exercise's check failed; the message says why in one sentence.

    ExerciseFailed(sentence): sentence must be a str that is one line, ends
    with a full stop, has one sentence and no traceback text; otherwise the
    constructor raises TypeError (not a str) or ValueError (the rule
    broken), naming the check author's mistake.  In IPython the learner sees
    "ExerciseFailed: <sentence>" and no traceback.
    """

    def __init__(self, sentence):
        if not isinstance(sentence, str):
            raise TypeError(f"ExerciseFailed takes one sentence (a str) for the "
                            f"learner, not {type(sentence).__name__}: a mistake "
                            f"in the check.")
        problem = _sentence_problem(sentence)
        if problem is not None:
            raise ValueError(f"ExerciseFailed takes one sentence for the learner "
                             f"(one line, ending with a full stop), but {problem}: "
                             f"a mistake in the check, not in the learner's code: "
                             f"{sentence!r}")
        super().__init__(sentence)

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


# -- text from the learner's code, made safe for a sentence -------------------


def preview(data, limit=40):
    """A short repr of some bytes (or str) for a sentence: the first limit, then a count."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r} (and {len(data) - limit} more)"


def describe_error(error):
    """An exception as one quoted phrase for a sentence: "ValueError('bad port')".

    Only the message's first line is kept (at most 80 characters), quoted,
    so that a learner's multi-line or multi-sentence message cannot break
    the one-sentence rule; an empty message gives just the class name.
    """
    lines = str(error).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if len(text) > 80:
        text = text[:77] + "..."
    name = type(error).__name__
    return f"{name}({text!r})" if text else name


# -- the placeholder rule -------------------------------------------------------


def _has_ellipsis_constant(code):
    """True if a code object, or one nested in it, holds the constant Ellipsis."""
    for const in code.co_consts:
        if const is Ellipsis:
            return True
        if inspect.iscode(const) and _has_ellipsis_constant(const):
            return True
    return False


def _defines(tree, name):
    """True if the parsed source ``tree`` starts with the definition of ``name``."""
    if name == "<lambda>":
        return any(isinstance(node, ast.Lambda) for node in ast.walk(tree))
    first = tree.body[0] if tree.body else None
    return (isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and first.name == name)


def _source_has_ellipsis(obj):
    """True/False from obj's source, or None when the source cannot be had."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    if not _defines(tree, getattr(obj, "__name__", None)):
        # Not obj's source: linecache can hold other text under the same
        # pseudo file name.  From Python 3.13 it keeps the code given to
        # `python -c` as "<string>", the name exec() gives its code too
        # (pytest-xdist starts its workers with -c), so inspect.getsource()
        # of an exec'd function returns a line of that command instead.
        return None
    return any(isinstance(node, ast.Constant) and node.value is Ellipsis
               for node in ast.walk(tree))


def _functions(obj):
    """The functions of a function, a method, or a class's own methods and properties."""
    if inspect.ismethod(obj):
        obj = obj.__func__
    if inspect.isfunction(obj):
        yield obj
    elif inspect.isclass(obj):
        for value in vars(obj).values():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                yield from (accessor for accessor in (value.fget, value.fset, value.fdel)
                            if inspect.isfunction(accessor))
            elif inspect.isfunction(value):
                yield value


def _is_placeholder(value, depth=0):
    """True if value is ..., or a list/tuple/set/dict that holds one (two levels deep)."""
    if value is Ellipsis:
        return True
    if depth >= 2:
        return False
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_is_placeholder(item, depth + 1) for item in value)
    return False


def _still_has_placeholder(obj):
    if _is_placeholder(obj):
        return True
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)):
        return False
    if inspect.isclass(obj) and any(_is_placeholder(value)
                                    for value in vars(obj).values()):
        return True
    # A bare `...` statement leaves no trace in the compiled code (the
    # compiler drops constant expressions), so the source decides when it
    # can be read; code objects catch `x = ...` and `return ...` always,
    # including in methods added to a class after its definition.
    found = _source_has_ellipsis(obj)
    if found is None and inspect.isclass(obj):
        # Before Python 3.13 (and in Jupyter, whose __main__ has no file) a
        # class's source often cannot be found, while its functions' can.
        found = any(_source_has_ellipsis(function) for function in _functions(obj))
    if found:
        return True
    return any(_has_ellipsis_constant(function.__code__) for function in _functions(obj))


def require_filled_in(obj, name=None):
    """Raise ExerciseFailed("fill in the ... in NAME first.") if obj still holds a ``...``.

    obj is the learner's answer: a function, a class (its source, its own
    functions and class attributes are looked at), or a value such as a
    list of predictions (``...`` in it, two levels deep).  name defaults to
    obj.__name__.  The source is read with inspect.getsource() (works for
    notebook cells); when it cannot be read, only the compiled code is
    looked at, which cannot see a bare ``...`` statement: the check then
    goes on and fails on what the code does instead.
    """
    if _still_has_placeholder(obj):
        label = name or getattr(obj, "__name__", None) or "your answer"
        raise ExerciseFailed(f"fill in the ... in {label} first.")
