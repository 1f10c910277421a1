"""Keep, of the JupyterLab stylesheet that nbconvert gives notebook pages, the rules that can apply.

nbconvert's "lab" template ships the whole of JupyterLab's interface CSS, about
600 KB: menus, toolbars, file browsers, Blueprint widgets, editors.  A lesson
page uses a few dozen of those classes, and every rule of the rest is still
parsed, and matched against every element, on every page load and every
scheme switch.  ``prune(css, classes)`` drops the rules that name a class of
JupyterLab's own families that no notebook page has (``classes_in()`` of each
page), and keeps everything else untouched: variables, fonts, keyframes, and
every rule whose classes are all in use or outside those families (Material's
scripts add classes such as ``md-typeset__scrollwrap`` after the page loads,
so a class of another family is never taken as absent).

A rule is kept whole or dropped whole, its selector list as it was: dropping
part of a list could make a rule valid that the browser ignores today.
"""

import re

#: Class families of JupyterLab's own interface: a selector needing one that no
#: notebook page has can never match there (nothing on the pages adds them later).
JUPYTERLAB_CLASS = re.compile(r"(?:jp|lm|p|bp3|cm)-|CodeMirror")
#: At-rules that hold rules (pruned inside); any other block is kept whole.
GROUPING_RULES = ("@media", "@supports", "@layer", "@container")

_CLASS_ATTRIBUTE = re.compile(r"""\bclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_CLASS_IN_SELECTOR = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")


def classes_in(html):
    """Every class named in a class attribute of this HTML (quoted or not)."""
    found = set()
    for match in _CLASS_ATTRIBUTE.finditer(html):
        found.update("".join(match.groups("")).split())
    return found


def prune(css, classes):
    """css without the rules that need a JupyterLab class absent from ``classes``."""
    return _prune_rules(_without_comments(css), frozenset(classes))


def _without_comments(css):
    """css with its /* comments */ removed (not those inside strings)."""
    out, i = [], 0
    while i < len(css):
        char = css[i]
        if char in "\"'":
            end = _string_end(css, i)
            out.append(css[i:end])
            i = end
        elif css.startswith("/*", i):
            end = css.find("*/", i + 2)
            i = len(css) if end == -1 else end + 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _string_end(css, start):
    """The offset just past the string that opens at css[start]."""
    quote, i = css[start], start + 1
    while i < len(css) and css[i] != quote:
        i += 2 if css[i] == "\\" else 1
    return i + 1


def _statements(css):
    """(prelude, block or None) for each top-level statement of css, in order."""
    i, start, depth, block_start, prelude = 0, 0, 0, None, None
    while i < len(css):
        char = css[i]
        if char in "\"'":
            i = _string_end(css, i)
            continue
        if char == "{":
            if depth == 0:
                prelude, block_start = css[start:i].strip(), i + 1
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                yield prelude, css[block_start:i]
                start = i + 1
            elif depth < 0:  # a stray "}": CSS ignores it, so do we
                depth, start = 0, i + 1
        elif char == ";" and depth == 0:
            if css[start:i].strip():
                yield css[start:i].strip(), None
            start = i + 1
        i += 1
    if depth:  # an unclosed block runs to the end, as in a browser
        yield prelude, css[block_start:]


def _prune_rules(css, classes):
    kept = []
    for prelude, block in _statements(css):
        if block is None:
            kept.append(prelude + ";")
        elif prelude.lower().startswith(GROUPING_RULES):
            inner = _prune_rules(block, classes)
            if inner:
                kept.append(f"{prelude}{{{inner}}}")
        elif prelude.startswith("@") or any(_can_match(s, classes) for s in _selectors(prelude)):
            kept.append(f"{prelude}{{{block}}}")
    return "\n".join(kept)


def _selectors(selector_list):
    """The selectors of a list, split at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(selector_list):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector_list[start:i])
            start = i + 1
    return parts + [selector_list[start:]]


def _can_match(selector, classes):
    """False only if the selector needs a JupyterLab class that is not in classes.

    What is inside strings, parentheses or brackets (``:not(.x)``,
    ``:is(.a, .b)``, ``[title=".x"]``) is not a class the element must have,
    so it is not looked at; a selector with an escape (``.a\\:b``) is kept.
    """
    selector = _STRING.sub('""', selector)
    if "\\" in selector:
        return True
    outside, depth = [], 0
    for char in selector:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0:
            outside.append(char)
    needed = _CLASS_IN_SELECTOR.findall("".join(outside))
    return all(name in classes or not JUPYTERLAB_CLASS.match(name) for name in needed)
