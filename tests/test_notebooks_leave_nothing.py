"""The check that every lesson cleans up after itself can fail, and fails for the right reasons.

The check itself runs inside nbval's own run of each notebook
(``tests/notebook_kernels.py``): a probe before the first cell and after the
last, in the notebook's kernel.  Here it is run, through one separate
pytest, on small notebooks written for the purpose: one that leaks a thread, a
socket, a child process and a file in its TMPDIR; one that cleans up; one
that leaks but is only run in part; one that looks at its own kernel.
"""

import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass
from xml.etree import ElementTree

import nbformat
import pytest

from notebook_kernels import KERNEL_EVENT_PIPE, left_behind

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAS_PROC = pathlib.Path("/proc/self/fd").is_dir()

LEAKY_CELLS = [
    "import os, socket, subprocess, sys, tempfile, threading",
    "stop = threading.Event()\n"
    "thread = threading.Thread(target=stop.wait, args=(30,), name='left-running', daemon=True)\n"
    "thread.start()",
    "listener = socket.socket(socket.AF_UNIX)\n"
    "listener.bind(os.path.join(tempfile.gettempdir(), 'left.sock'))",
    # A child that ends by itself when its parent (the kernel) goes and its stdin closes.
    "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],\n"
    "                         stdin=subprocess.PIPE)",
]
CLEAN_CELLS = LEAKY_CELLS + [
    "stop.set(); thread.join()\n"
    "listener.close(); os.unlink(os.path.join(tempfile.gettempdir(), 'left.sock'))\n"
    "child.stdin.close(); child.wait()",
]


#: The small notebooks, all run by one pytest (a pytest and its kernels cost seconds each).
NOTEBOOKS = {
    "leaky.ipynb": LEAKY_CELLS,
    "clean.ipynb": CLEAN_CELLS,
    # Only its first two cells run (SELECTION): the thread they start would be stopped by
    # later cells, so probing it would be wrong.
    "partial.ipynb": CLEAN_CELLS,
    "own-tmpdir.ipynb": [
        "import os, tempfile, zmq\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "folder = tempfile.gettempdir()\n"
        "assert os.path.basename(folder) == 'tmp', folder\n"
        "assert os.path.basename(os.path.dirname(folder)).startswith('kernel-'), folder\n"
        "assert IPKernelApp.instance().transport == ('ipc' if zmq.has('ipc') else 'tcp')"],
}
#: Every cell of the other notebooks; of partial.ipynb, Cell 0 and Cell 1 only.
SELECTION = "not partial or 0 or 1"


@dataclass
class Run:
    """One pytest run of NOTEBOOKS: its output and, per notebook, {cell: outcome}."""

    output: str
    outcomes: dict
    errors: dict  # {notebook: the text of its cells' failures and errors}
    left_in_folder: list

    def report(self, notebook):
        """The text of the errors reported for this notebook's cells."""
        return self.errors.get(notebook, "")


def _outcomes(junit_xml):
    """{notebook: {"Cell N": "passed" | "failed" | "error" | "skipped"}} and {notebook: text}."""
    outcomes, texts = {}, {}
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        notebook = case.get("classname").split(".")[0] + ".ipynb"
        cell = case.get("name")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                # A teardown error comes after the cell's pass: it is what counts.
                outcome = child.tag if child.tag != "failure" else "failed"
                texts[notebook] = texts.get(notebook, "") + (child.text or "")
        cells = outcomes.setdefault(notebook, {})
        if cells.get(cell) in (None, "passed"):
            cells[cell] = outcome
    return outcomes, texts


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run nbval with this plugin, alone, on NOTEBOOKS (SELECTION), once for this file."""
    folder = tmp_path_factory.mktemp("leave-nothing")
    for name, cells in NOTEBOOKS.items():
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nbformat.write(notebook, folder / name)
    (folder / "pytest.ini").write_text("[pytest]\n")  # not this repository's options
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"), TMPDIR=str(folder))
    env.pop("PYTEST_ADDOPTS", None)
    junit = folder.parent / f"{folder.name}.xml"  # outside the folder the kernels must tidy
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "notebook_kernels", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--nbval-lax", "-q", "-k", SELECTION, f"--junitxml={junit}",
         *NOTEBOOKS],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    outcomes, errors = _outcomes(junit)
    return Run(proc.stdout + proc.stderr, outcomes, errors, sorted(p.name for p in folder.iterdir()))


@pytest.mark.skipif(not HAS_PROC, reason="descriptor and child counts need /proc")
def test_a_notebook_that_leaks_fails_naming_each_kind_of_leak(run):
    assert run.outcomes["leaky.ipynb"] == {
        "Cell 0": "passed", "Cell 1": "passed", "Cell 2": "passed", "Cell 3": "error"}, run.output
    assert "ERROR at teardown of leaky.ipynb::Cell 3" in run.output, run.output
    report = run.report("leaky.ipynb")
    report = report[report.index("left this behind in its kernel"):]
    assert "threads: ['left-running']" in report
    assert "files: ['left.sock']" in report
    assert re.search(r"children: \[\d+\]", report), report
    assert re.search(r"descriptors: .*'socket:\[\d+\]'", report), report


def test_a_notebook_that_cleans_up_passes(run):
    assert run.outcomes["clean.ipynb"] == {f"Cell {n}": "passed" for n in range(5)}, run.output
    assert run.report("clean.ipynb") == ""


def test_a_notebook_run_in_part_is_not_probed(run):
    """Only the first two cells: the thread they start would be stopped by later cells."""
    assert run.outcomes["partial.ipynb"] == {"Cell 0": "passed", "Cell 1": "passed"}, run.output
    assert run.report("partial.ipynb") == ""


def test_each_kernel_has_a_tmpdir_of_its_own_talks_over_unix_sockets_and_is_tidied(run):
    assert run.outcomes["own-tmpdir.ipynb"] == {"Cell 0": "passed"}, run.output
    # Every kernel's folder (its sockets, its TMPDIR: leaky.ipynb's left.sock too) is gone
    # with the kernel.
    assert run.left_in_folder == sorted([*NOTEBOOKS, "pytest.ini"])


def test_a_kernels_own_event_pipe_and_package_files_are_not_leaks():
    before = {"threads": [], "descriptors": ["pipe:[1]"], "children": [], "files": [],
              "packages": "/venv/site-packages"}
    after = dict(before, descriptors=["pipe:[1]", KERNEL_EVENT_PIPE,
                                      "/venv/site-packages/matplotlib/fonts/DejaVuSans.ttf",
                                      "anon_inode:[eventpoll]"])
    assert left_behind(before, after) == {"descriptors": ["anon_inode:[eventpoll]"]}


def test_a_second_descriptor_of_the_same_kind_counts():
    before = {"threads": ["MainThread"], "descriptors": ["anon_inode:[eventpoll]"],
              "children": [], "files": [], "packages": "/venv/site-packages"}
    after = dict(before, descriptors=["anon_inode:[eventpoll]", "anon_inode:[eventpoll]"])
    assert left_behind(before, after) == {"descriptors": ["anon_inode:[eventpoll]"]}


def test_where_a_platform_cannot_tell_the_kind_is_not_compared():
    before = {"threads": [], "descriptors": None, "children": None, "files": [], "packages": "/p"}
    after = dict(before, threads=["left-running"])
    assert left_behind(before, after) == {"threads": ["left-running"]}
