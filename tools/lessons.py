"""The list of lessons, read from the notebooks themselves.

Every place that lists the lessons gets the list from here, so the lists
cannot drift apart:

* the site's "Lessons" navigation (``tools/mkdocs_hooks.py``),
* the lesson index in README.md, between two marker comments, which
  ``python tools/lessons.py --write-readme`` rewrites and
  ``tests/test_readme.py`` checks.

A lesson is a notebook ``notebooks/NN-kebab-title.ipynb``.  Its number and
slug come from the file name; its title is the text of the first ``# ``
heading in its first markdown cell that has one.  Notebooks are read as
plain JSON (not through nbformat) so this module needs only the standard
library and stays fast enough to run on every site build.

Usage::

    python tools/lessons.py                 print the lesson list
    python tools/lessons.py --write-readme  rewrite the README block
    python tools/lessons.py --check         exit 1 if the README block is stale
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Lesson", "find_lessons", "render_readme_block", "replace_readme_block",
           "README_START", "README_END", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent

README_START = ("<!-- lessons:start (generated from notebooks/*.ipynb by "
                "`python tools/lessons.py --write-readme`; do not edit by hand) -->")
README_END = "<!-- lessons:end -->"

# NN-kebab-title.ipynb; anything else in notebooks/ (scratch copies,
# "Untitled.ipynb") is not a lesson and is left out on purpose.
_LESSON_NAME = re.compile(r"^(?P<number>\d{2})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.ipynb$")
_H1 = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$")


@dataclass(frozen=True)
class Lesson:
    """One notebook of the course: where it lives and what it is called."""

    number: str  # "01": kept as text so the zero padding survives
    slug: str  # "from-sockets-to-socketserver"
    title: str  # text of the notebook's first "# " heading
    path: Path  # absolute path of the .ipynb file

    @property
    def filename(self):
        """The notebook's file name, e.g. "01-from-sockets-to-socketserver.ipynb"."""
        return self.path.name

    @property
    def site_uri(self):
        """The notebook's path in the site, as in the repository: "notebooks/NN-slug.ipynb"."""
        return f"notebooks/{self.filename}"


def _first_heading(notebook_path):
    """The text of the first level-1 heading in the notebook's markdown cells."""
    with open(notebook_path, encoding="utf-8") as f:
        notebook = json.load(f)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):  # nbformat stores text as a list of lines
            source = "".join(source)
        in_fence = False
        for line in source.splitlines():
            # A "# comment" inside a fenced code block is not a heading.
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence
            match = None if in_fence else _H1.match(line)
            if match:
                return match.group("title")
    return None


def find_lessons(notebooks_dir=None):
    """The lessons in notebooks_dir (default: the repository's), in order.

    Raises ValueError naming the file if a lesson notebook has no "# " title:
    a lesson without a title would show up nameless in the site and README.
    """
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else ROOT / "notebooks"
    lessons = []
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        match = _LESSON_NAME.match(path.name)
        if not match:
            continue
        title = _first_heading(path)
        if title is None:
            raise ValueError(f"{path}: no '# Title' heading in any markdown cell")
        lessons.append(Lesson(match.group("number"), match.group("slug"), title, path.resolve()))
    return lessons


def render_readme_block(lessons):
    """The README's lesson index, marker comments included."""
    lines = [README_START]
    if lessons:
        # Links are relative to the README; GitHub renders notebooks.
        lines += [f"{int(lesson.number)}. [{lesson.title}](notebooks/{lesson.filename})"
                  for lesson in lessons]
    else:
        lines.append("*No lessons yet.*")
    lines.append(README_END)
    return "\n".join(lines)


def replace_readme_block(readme_text, block):
    """readme_text with the text between (and including) the markers replaced by block."""
    start = readme_text.find(README_START)
    end = readme_text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README.md has no lesson block; add these two lines where it belongs:\n"
                         f"{README_START}\n{README_END}")
    return readme_text[:start] + block + readme_text[end + len(README_END):]


def main(argv=None):
    """Print the lessons, or rewrite or check README.md's lesson block."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write-readme", action="store_true",
                       help="rewrite the lesson block in README.md")
    group.add_argument("--check", action="store_true",
                       help="exit 1 if README.md's lesson block is out of date")
    args = parser.parse_args(argv)

    try:
        lessons = find_lessons()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (args.write_readme or args.check):
        for lesson in lessons:
            print(f"{lesson.number}  {lesson.title}  ({lesson.filename})")
        return 0

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    try:
        updated = replace_readme_block(text, render_readme_block(lessons))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print("README.md's lesson list is out of date: run "
                  "python tools/lessons.py --write-readme", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        readme.write_text(updated, encoding="utf-8")
        print(f"README.md: lesson list updated ({len(lessons)} lessons)")
    else:
        print("README.md: lesson list already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
