"""The check that every lesson cleans up after itself can fail, and fails for the right reasons.

The check itself runs inside nbval's own run of each notebook
(``tests/notebook_kernels.py``): a probe before the first cell and after the
last, in the notebook's kernel.  Here it is run, through a separate pytest,
on small notebooks written for the purpose: one that leaks a thread, a
socket, a child process and a file in its TMPDIR; one that cleans up; one
that leaks but is only run in part.
"""

import os
import pathlib
import re
import subprocess
import sys

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


def _run_pytest(tmp_path, cells, *args):
    """Run nbval with this plugin, alone, on a notebook of these cells; return (code, output)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, tmp_path / "lesson.ipynb")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this repository's options
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"), TMPDIR=str(tmp_path))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "notebook_kernels", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--nbval-lax", "-q", "lesson.ipynb", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.skipif(not HAS_PROC, reason="descriptor and child counts need /proc")
def test_a_notebook_that_leaks_fails_naming_each_kind_of_leak(tmp_path):
    code, output = _run_pytest(tmp_path, LEAKY_CELLS)
    assert code != 0, output
    assert "ERROR at teardown of lesson.ipynb::Cell 3" in output, output
    report = output[output.index("left this behind in its kernel"):]
    assert "threads: ['left-running']" in report
    assert "files: ['left.sock']" in report
    assert re.search(r"children: \[\d+\]", report), report
    assert re.search(r"descriptors: .*'socket:\[\d+\]'", report), report
    assert "4 passed, 1 error" in output, output


def test_a_notebook_that_cleans_up_passes(tmp_path):
    code, output = _run_pytest(tmp_path, CLEAN_CELLS)
    assert code == 0, output
    assert "5 passed" in output, output


def test_a_notebook_run_in_part_is_not_probed(tmp_path):
    """Only the first two cells: the thread they start would be stopped by later cells."""
    code, output = _run_pytest(tmp_path, CLEAN_CELLS, "-k", "0 or 1")  # Cell 0, Cell 1
    assert code == 0, output
    assert "2 passed" in output, output


def test_each_kernel_has_a_tmpdir_of_its_own_talks_over_unix_sockets_and_is_tidied(tmp_path):
    cells = ["import os, tempfile, zmq\n"
             "from ipykernel.kernelapp import IPKernelApp\n"
             "folder = tempfile.gettempdir()\n"
             "assert os.path.basename(folder) == 'tmp', folder\n"
             "assert os.path.basename(os.path.dirname(folder)).startswith('kernel-'), folder\n"
             "assert IPKernelApp.instance().transport == ('ipc' if zmq.has('ipc') else 'tcp')"]
    code, output = _run_pytest(tmp_path, cells)
    assert code == 0, output
    # The kernel's folder (its sockets, its TMPDIR) is gone with the kernel.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesson.ipynb", "pytest.ini"]


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
