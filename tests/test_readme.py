"""README.md's promises: the lesson index, the test command's options, and the learner's workspace.

The lesson index is the one tools/lessons.py renders from the notebooks.

The site's navigation is built from the same function (tools/mkdocs_hooks.py),
so the README, the site and the notebooks folder cannot disagree.  To fix a
failure: python tools/lessons.py --write-readme
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import lessons  # noqa: E402  (tools/lessons.py)


def readme_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(lessons.README_START)
    end = text.index(lessons.README_END) + len(lessons.README_END)
    return text[start:end]


def test_readme_lesson_list_matches_the_notebooks():
    expected = lessons.render_readme_block(lessons.find_lessons())
    assert readme_block() == expected, (
        "README.md's lesson list is out of date: run python tools/lessons.py --write-readme")


def test_every_notebook_in_notebooks_is_a_lesson():
    """A notebook whose name breaks the NN-kebab-title pattern would silently be left out."""
    names = {lesson.filename for lesson in lessons.find_lessons()}
    notebooks = {path.name for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks == names


def test_readme_links_point_to_existing_files():
    for lesson in lessons.find_lessons():
        assert f"](notebooks/{lesson.filename})" in readme_block()
        assert (ROOT / "notebooks" / lesson.filename).is_file()


def test_render_numbers_and_titles_lessons(tmp_path):
    """The rendering itself, on a made-up notebooks folder."""
    cell = '{"cell_type": "markdown", "metadata": {}, "source": ["# Title %s\\n", "text"]}'
    for name in ("02-second.ipynb", "01-first.ipynb", "scratch.ipynb"):
        body = '{"cells": [%s], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}' % (
            cell % name[:2])
        (tmp_path / name).write_text(body, encoding="utf-8")
    found = lessons.find_lessons(tmp_path)
    assert [(lesson.number, lesson.slug, lesson.title) for lesson in found] == [
        ("01", "first", "Title 01"), ("02", "second", "Title 02")]
    block = lessons.render_readme_block(found)
    assert block.splitlines()[1:-1] == [
        "1. [Title 01](notebooks/01-first.ipynb)", "2. [Title 02](notebooks/02-second.ipynb)"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_workspace_copies_each_lesson_once_and_keeps_the_learners_copy(tmp_path):
    """README, "Your workspace": copies every lesson, never over a file already there."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    first = sorted(lesson.filename for lesson in lessons.find_lessons())[0]
    (workspace / first).write_text("the learner's own work", encoding="utf-8")

    def make_workspace():
        subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "workspace", f"WORKSPACE={workspace}"],
                       check=True, capture_output=True, text=True, timeout=60)

    make_workspace()
    names = {lesson.filename for lesson in lessons.find_lessons()}
    assert {path.name for path in workspace.iterdir()} == names
    assert (workspace / first).read_text(encoding="utf-8") == "the learner's own work"
    for name in names - {first}:
        assert (workspace / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
    (workspace / name).write_text("edited", encoding="utf-8")
    make_workspace()  # a second run copies nothing over the learner's files
    assert (workspace / name).read_text(encoding="utf-8") == "edited"


def test_the_workspace_is_neither_collected_nor_tracked(pytestconfig):
    """README, "Your workspace": pytest skips it and git ignores it."""
    assert "workspace" in pytestconfig.getini("norecursedirs")
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "workspace/01-x.ipynb"],
                                 timeout=30)
        assert ignored.returncode == 0, "git does not ignore workspace/"


#: How the pages write a worker count.
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def test_the_pages_say_how_many_workers_pyproject_sets():
    """README.md and the setup page name the worker count that pyproject.toml's addopts set."""
    addopts = re.search(r'addopts = """(.*?)"""', (ROOT / "pyproject.toml").read_text(), re.S)[1]
    workers = NUMBER_WORDS[int(re.search(r"-n (\d+)", addopts)[1])]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    setup = " ".join((ROOT / "docs" / "setup.md").read_text(encoding="utf-8").split())
    assert f"with {workers} workers in parallel" in readme
    assert f"{workers} parallel workers" in setup
    others = [word for word in NUMBER_WORDS.values() if word != workers]
    assert not [w for w in others if f"{w} workers" in readme or f"{w} parallel workers" in setup]
