"""The site's pages for teachers and students, checked from their sources (no build, no browser).

* every page in docs/ is in the nav, every nav entry exists, and the home
  page links to the classroom guide, the handout, the exercises, the
  troubleshooting page and the glossary;
* the classroom guide has an entry for every lesson, whose minutes are the
  notebook's own "**Core** (about N min) ... **Going further** (about M min)";
  and its table of safety options has the chat command's real defaults;
* the exercises list (tools/site_pages.py, filled in at build time) finds
  every "### Exercise N" heading of every notebook, numbered 1, 2, 3 ...;
* every link from these pages into a lesson names a heading of that lesson,
  with the id mkdocs-jupyter gives it; and the build's own check of those
  links (tools/site_pages.broken_lesson_links) catches a wrong one;
* the handout's commands and limits are the chat server's.

tests/test_site.py opens every page of the nav in Chromium; these pages are
checked there too.
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import lessons  # noqa: E402  (tools/lessons.py)
import site_pages  # noqa: E402  (tools/site_pages.py)

from sockserv.examples import chat_protocol  # noqa: E402
from sockserv.examples.cli import build_parser  # noqa: E402

NEW_PAGES = ["classroom.md", "handout.md", "troubleshooting.md", "glossary.md", "exercises.md"]
LESSONS = lessons.find_lessons()
# A Markdown link into a lesson: (notebook file name, anchor).
LESSON_LINK = re.compile(r"\]\(notebooks/(\d\d-[a-z0-9-]+\.ipynb)(?:#([^)\s]+))?\)")


def read(name):
    return (DOCS / name).read_text(encoding="utf-8")


def nav_pages():
    """The .md files named in mkdocs.yml's nav (its `- Title: file.md` lines)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    nav = nav.split("\n\n", 1)[0]
    return re.findall(r"^\s*-\s*[^:\n]+:\s*(\S+\.md)\s*$", nav, re.M)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    pages = nav_pages()
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
                     if "overrides" not in p.relative_to(DOCS).parts)
    assert sorted(pages) == on_disk
    assert len(pages) == len(set(pages))
    for name in NEW_PAGES:
        assert name in pages


def test_home_page_links_to_each_new_page():
    home = read("index.md")
    for name in NEW_PAGES:
        assert f"]({name})" in home, name


# -- the classroom guide ----------------------------------------------------

def classroom_entries():
    """{lesson number: (section text)} of the guide's "## Lesson NN: ..." sections."""
    text = read("classroom.md")
    parts = re.split(r"^## Lesson (\d\d): ", text, flags=re.M)
    entries = {}
    for number, body in zip(parts[1::2], parts[2::2]):
        entries[number] = body.split("\n## ", 1)[0]
    return entries


def test_classroom_guide_has_an_entry_for_every_lesson_and_only_those():
    assert sorted(classroom_entries()) == [lesson.number for lesson in LESSONS]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_classroom_guide_minutes_are_the_notebooks_own(lesson):
    entry = classroom_entries()[lesson.number]
    match = re.search(r"\*\*Time:\*\* core (\d+) min, going further (\d+) min\.", entry)
    assert match, f"lesson {lesson.number}: no '**Time:** core N min, going further M min.'"
    duration = site_pages.lesson_duration(lesson)
    assert (int(match.group(1)), int(match.group(2))) == (duration.core, duration.going_further)
    # The entry's heading links to that lesson's notebook.
    first_line = entry.splitlines()[0]
    assert f"(notebooks/{lesson.filename})" in first_line
    for part in ("**Goals**", "**Project and run live**", "**Students do**",
                 "**Usual questions**", "**Exercises checked by**"):
        assert part in entry, (lesson.number, part)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_classroom_guide_names_each_lessons_exercise_checks(lesson):
    """The checks named in the guide are the ones the notebook's check cells call."""
    with open(lesson.path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    called = set()
    for cell in cells:
        if cell["cell_type"] == "code" and "solution" not in cell.get("metadata", {}).get("tags", []):
            called |= set(re.findall(rf"lesson{lesson.number}\.(check_\w+)\(", "".join(cell["source"])))
    entry = classroom_entries()[lesson.number]
    checked_by = entry.split("**Exercises checked by**", 1)[1]
    assert set(re.findall(r"`(check_\w+)`", checked_by)) == called


def test_classroom_safety_options_have_the_chat_commands_defaults():
    chat = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    defaults = {action.option_strings[0]: action.default
                for action in chat.choices["chat"]._actions if action.option_strings}
    text = read("classroom.md").split("### The classroom-safety options", 1)[1]
    rows = dict(re.findall(r"^\| `(--[a-z-]+) [A-Z]+` \| (\S+) \|", text, re.M))
    assert set(rows) == {"--max-line", "--idle-timeout", "--max-clients", "--rate", "--burst"}
    for option, shown in rows.items():
        assert float(shown) == float(defaults[option]), option


# -- the exercises ----------------------------------------------------------

def test_exercises_page_is_filled_from_the_notebooks():
    assert re.search(r"^<!-- exercise-list\b.*-->$", read("exercises.md"), re.M)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.number)
def test_exercise_list_finds_every_exercise_heading(lesson):
    with open(lesson.path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    headings = [line for cell in cells if cell["cell_type"] == "markdown"
                for line in "".join(cell["source"]).splitlines() if line.startswith("### Exercise")]
    solutions = [line for cell in cells if cell["cell_type"] == "markdown"
                 for line in "".join(cell["source"]).splitlines()
                 if line.startswith("#### Solution to exercise")]
    found = [e for e in site_pages.find_exercises([lesson])]
    assert len(found) == len(headings) >= 1
    assert [e.number for e in found] == list(range(1, len(found) + 1))
    assert len(solutions) == len(found)
    for exercise in found:
        assert exercise.title and not exercise.title.startswith(("(", ":"))
        assert exercise.going_further == ("(going further)" in headings[exercise.number - 1])


def test_exercise_list_links_each_exercise_to_its_heading():
    markdown = site_pages.render_exercise_list(LESSONS, lambda lesson: lesson.site_uri)
    links = re.findall(r"\[Exercise (\d+)\]\(notebooks/([^)#]+)#([^)]+)\)", markdown)
    assert len(links) == len(site_pages.find_exercises(LESSONS))
    for _, filename, anchor in links:
        anchors = {a for _, _, a in site_pages.notebook_headings(ROOT / "notebooks" / filename)}
        assert anchor in anchors


def test_exercise_list_without_exercises_says_so():
    assert "on their way" in site_pages.render_exercise_list([], lambda lesson: "")


# -- links into the lessons -------------------------------------------------

@pytest.mark.parametrize("heading, anchor", [
    # What mkdocs-jupyter made of these headings in a real build of the site.
    ("`setup()` → `handle()` → `finish()`", "setup-handle-finish"),
    ("What `recv()` returning `b''` means", "what-recv-returning-b-means"),
    ("The finished version: `sockserv.examples.chat`", "the-finished-version-sockservexampleschat"),
    ("Exercise 3 (going further): a bot that answers questions",
     "exercise-3-going-further-a-bot-that-answers-questions"),
    ("Going further: versions 3.6 to 3.13", "going-further-versions-36-to-313"),
])
def test_heading_anchor_is_the_one_mkdocs_jupyter_makes(heading, anchor):
    assert site_pages.heading_anchor(heading) == anchor


@pytest.mark.parametrize("page", ["classroom.md", "troubleshooting.md", "glossary.md"])
def test_links_into_lessons_name_real_headings(page):
    by_file = {lesson.filename: lesson for lesson in LESSONS}
    links = LESSON_LINK.findall(read(page))
    assert links, f"{page} links to no lesson"
    for filename, anchor in links:
        assert filename in by_file, (page, filename)
        if anchor:
            anchors = {a for _, _, a in site_pages.notebook_headings(by_file[filename].path)}
            assert anchor in anchors, (page, filename, anchor)


def test_glossary_links_every_term_to_a_lesson():
    rows = [line for line in read("glossary.md").splitlines()
            if line.startswith("| ") and not line.startswith(("| term", "| ---"))]
    assert len(rows) >= 40
    for row in rows:
        assert LESSON_LINK.search(row), row


def _fake_site(root, lesson_html, page_html):
    (root / "notebooks" / "01-x").mkdir(parents=True)
    (root / "notebooks" / "01-x" / "index.html").write_text(lesson_html, encoding="utf-8")
    (root / "glossary").mkdir()
    (root / "glossary" / "index.html").write_text(page_html, encoding="utf-8")


def test_broken_lesson_links_reports_a_missing_anchor_and_only_that(tmp_path):
    _fake_site(tmp_path, '<h2 id="the-serve-loop">The serve loop</h2>',
               '<a href="../notebooks/01-x/#the-serve-loop">ok</a>'
               '<a href="../notebooks/01-x/#the-serve-lop">typo</a>'
               '<a href="../notebooks/02-gone/#anything">no such page</a>'
               '<a href="#local">in-page</a><a href="https://example.org/#x">elsewhere</a>')
    assert site_pages.broken_lesson_links(tmp_path) == [
        ("glossary/index.html", "../notebooks/01-x/#the-serve-lop"),
        ("glossary/index.html", "../notebooks/02-gone/#anything"),
    ]


def test_broken_lesson_links_sees_ids_on_any_tag_and_links_among_other_tags(tmp_path):
    _fake_site(tmp_path, '<span class="k">x</span><div class="cell" id="cell-3">code</div>'
                         "<section data-x='1' id='quoted-once'></section>",
               '<p><span>see</span> <a class="x" href="../notebooks/01-x/#cell-3">ok</a></p>'
               '<A HREF="../notebooks/01-x/#quoted-once">ok</A>'
               '<a href="../notebooks/01-x/#cell-4">typo</a>')
    assert site_pages.broken_lesson_links(tmp_path) == [
        ("glossary/index.html", "../notebooks/01-x/#cell-4")]


def test_broken_lesson_links_finds_nothing_when_all_resolve(tmp_path):
    _fake_site(tmp_path, '<h3 id="telnet">Telnet</h3>',
               '<a href="../notebooks/01-x/index.html#telnet">ok</a>')
    assert site_pages.broken_lesson_links(tmp_path) == []


# -- the handout and the troubleshooting page ---------------------------------

def test_handout_lists_every_chat_command_and_the_default_limits():
    handout = read("handout.md")
    commands = re.findall(r"/\w+", chat_protocol.LINES["help"])
    assert commands
    for command in commands:
        assert f"`{command}" in handout, command
    limits = chat_protocol.LIMITS
    assert f"**{limits.max_line} bytes**" in handout
    assert f"**Idle for {limits.idle_timeout:g} s**" in handout
    assert f"**{limits.burst} lines at once**" in handout
    assert f"**{limits.rate:g} a second**" in handout
    for client in ("`nc HOST 9999`", "`telnet HOST 9999`", "**Raw**", "-m sockserv client HOST 9999",
                   "Ctrl-]"):
        assert client in handout, client
    assert "@media print" in handout


def test_troubleshooting_covers_each_error_and_tool():
    text = read("troubleshooting.md")
    headings = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for name in ("EADDRINUSE", "10048", "ECONNREFUSED", "10061", "ECONNRESET", "10054", "10053",
                 "BrokenPipeError", "Timeouts", "firewall", "`ss`", "`netstat`", "`lsof`", "`nc`",
                 "`tcpdump`"):
        assert name in headings, name
    # The one chat line's capture: the handshake, the data and both FINs.
    capture = text.split("### `tcpdump`", 1)[1]
    for flags in ("Flags [S]", "Flags [S.]", "Flags [P.]", "Flags [F.]"):
        assert flags in capture, flags
