"""What the site's reference pages take from the lessons themselves, so they cannot drift.

* The **exercises** of every lesson: each notebook's ``### Exercise N: title``
  headings (``### Exercise N (going further): title`` for the optional ones).
  ``tools/mkdocs_hooks.py`` fills the ``<!-- exercise-list -->`` marker of
  ``docs/exercises.md`` with :func:`render_exercise_list`.
* The **duration** of each lesson: the minutes in its "**Core** (about N min)"
  and "**Going further** (about M min)" line, which ``tests/test_site_pages.py``
  compares with the classroom guide.
* The **anchor** of a notebook heading, as mkdocs-jupyter makes it (its own
  ``slugify`` of the heading's text), for links into a lesson.
* After a build, :func:`broken_lesson_links` lists every link from a page into
  a lesson page whose ``#anchor`` is not an id on that page; the hook turns
  each into a warning, which fails ``mkdocs build --strict``.

Notebooks are read as plain JSON, like ``tools/lessons.py`` does.
"""

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from mkdocs_jupyter.utils import slugify  # the function that makes notebook heading ids

__all__ = ["Exercise", "Duration", "find_exercises", "lesson_duration", "heading_anchor",
           "notebook_headings", "render_exercise_list", "broken_lesson_links"]

_EXERCISE = re.compile(
    r"^###[ \t]+Exercise[ \t]+(?P<number>\d+)(?P<further>[ \t]+\(going further\))?:[ \t]*"
    r"(?P<title>.+?)[ \t]*$", re.M)
_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$")
_CORE = re.compile(r"\*\*Core\*\*\s*\(about\s+(\d+)\s+min\)")
_FURTHER = re.compile(r"\*\*Going further\*\*\s*\(about\s+(\d+)\s+min\)")


@dataclass(frozen=True)
class Exercise:
    """One exercise of one lesson, as its heading names it."""

    lesson: object  # tools/lessons.py's Lesson
    number: int
    title: str  # Markdown, e.g. "a private `/msg NAME TEXT`"
    going_further: bool
    anchor: str  # the heading's id on the lesson page


@dataclass(frozen=True)
class Duration:
    """A lesson's minutes, from its "What you will learn" cell."""

    core: int
    going_further: int


def _markdown_cells(path):
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            yield "".join(source) if isinstance(source, list) else source


def _plain_text(markdown):
    """A heading's text as the reader sees it: code spans, emphasis and links unwrapped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[`*]", "", text)


def heading_anchor(markdown_heading):
    """The id mkdocs-jupyter gives a heading with this Markdown text (no "#" prefix)."""
    return slugify(_plain_text(markdown_heading))


def notebook_headings(path):
    """(level, Markdown text, anchor) of every heading in a notebook's Markdown cells."""
    found = []
    for source in _markdown_cells(path):
        in_fence = False
        for line in source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence
                continue
            match = None if in_fence else _HEADING.match(line)
            if match:
                text = match.group("text")
                found.append((len(match.group("hashes")), text, heading_anchor(text)))
    return found


def find_exercises(lessons):
    """Every exercise of the given lessons, in lesson order then exercise order."""
    exercises = []
    for lesson in lessons:
        for source in _markdown_cells(lesson.path):
            for match in _EXERCISE.finditer(source):
                heading = match.group(0).lstrip("#").strip()
                exercises.append(Exercise(lesson, int(match.group("number")),
                                          match.group("title"), bool(match.group("further")),
                                          heading_anchor(heading)))
    return exercises


def lesson_duration(lesson):
    """The lesson's core and going-further minutes; ValueError if its line is missing."""
    for source in _markdown_cells(lesson.path):
        core, further = _CORE.search(source), _FURTHER.search(source)
        if core and further:
            return Duration(int(core.group(1)), int(further.group(1)))
    raise ValueError(f"{lesson.filename}: no '**Core** (about N min) ... **Going further** "
                     "(about M min)' line")


def render_exercise_list(lessons, link_for):
    """The exercises page's list, as Markdown.

    link_for(lesson) is the link to the lesson's page from the page that
    holds the list (the hook passes a relative link to the .ipynb, which
    MkDocs turns into a link to the lesson page).
    """
    exercises = find_exercises(lessons)
    if not exercises:
        return "*The exercises are on their way.*"
    blocks = []
    for lesson in lessons:
        own = [e for e in exercises if e.lesson == lesson]
        if not own:
            continue
        link = link_for(lesson)
        lines = [f"### Lesson {lesson.number}: [{lesson.title}]({link})", ""]
        for exercise in own:
            mark = " *(going further)*" if exercise.going_further else ""
            lines.append(f"- [Exercise {exercise.number}]({link}#{exercise.anchor}):"
                         f" {exercise.title}{mark}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


#: The start tags that can hold what _IdsAndLinks collects: an <a>, or any with an id.
_ID_OR_LINK_TAG = re.compile(r"<(?:a\b|[a-zA-Z][\w-]*\b[^>]*?\bid\s*=)[^>]*>", re.I)


class _IdsAndLinks(HTMLParser):
    """Every id in a page, and the href of every <a>.

    Only the start tags that can hold one are parsed (a lesson page's
    thousands of code-colouring <span>s are not: a fifth of the time).
    """

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []
        self.feed("\n".join(match.group(0) for match in _ID_OR_LINK_TAG.finditer(text)))
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _page_file(site_dir, path):
    """The HTML file a site path serves: "x/" -> x/index.html."""
    target = site_dir / unquote(path).lstrip("/")
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


def broken_lesson_links(site_dir, lesson_dirs=("notebooks",)):
    """(page, href) of each link from a non-lesson page to a lesson anchor that does not exist.

    site_dir is a built site; lesson pages are the HTML files under
    lesson_dirs.  Only links with a "#anchor" into a lesson page are checked.
    """
    site_dir = Path(site_dir)
    lesson_roots = [site_dir / d for d in lesson_dirs]
    ids_of = {}
    broken = []
    for page in sorted(site_dir.rglob("*.html")):
        if any(root in page.parents for root in lesson_roots):
            continue
        base = "http://site/" + page.relative_to(site_dir).as_posix()
        for href in _IdsAndLinks(page.read_text(encoding="utf-8")).links:
            url = urlsplit(urljoin(base, href))
            if url.netloc != "site" or not url.fragment:
                continue
            target = _page_file(site_dir, url.path)
            if not any(root in target.parents for root in lesson_roots):
                continue
            if target not in ids_of:
                ids_of[target] = (_IdsAndLinks(target.read_text(encoding="utf-8")).ids
                                  if target.is_file() else None)
            ids = ids_of[target]
            if ids is None or unquote(url.fragment) not in ids:
                broken.append((page.relative_to(site_dir).as_posix(), href))
    return broken
