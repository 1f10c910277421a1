"""Every lesson cleans up after itself: no thread, child, descriptor or temporary file left.

nbval checks what a notebook prints; this checks what it leaves behind.  Each
notebook runs in a fresh kernel started with a temporary folder (TMPDIR) of
its own.  A probe runs inside that kernel before the first cell and after the
last, and reports only what belongs to the kernel itself: its threads
(``threading.enumerate()``), its open descriptors (``/proc/self/fd``), its
child processes, zombies included (``/proc/self/task/*/children``), and what
is in its own TMPDIR.  The two reports must agree.  Nothing machine-wide is
looked at, so another program (or another run of this suite) cannot make it
fail.  Where ``/proc`` is missing (macOS, Windows) the descriptor and child
counts are skipped and the rest is still compared.

``test_the_probe_sees_each_kind_of_leak`` runs a small notebook that leaks
one of each on purpose, so this check is known to be able to fail.
"""

import collections
import json
import os
import pathlib
import tempfile

import nbformat
import pytest
from jupyter_core.utils import ensure_event_loop
from nbclient import NotebookClient

# nbclient runs its kernel client on an asyncio loop that jupyter_core keeps
# for the life of the process; the loop's self-pipe is a socket pair.
# Creating the loop here, before any test, keeps the leak guard (conftest.py)
# from taking it for a leak of the first test.
ensure_event_loop()

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]-*.ipynb"))

# Runs inside the kernel; prints one JSON line describing what the kernel holds now.
# It reads /proc/self the way conftest.py's leak guard does, but it runs in another
# process (the kernel), so it is sent as source.  One function, deleted again: the probe
# leaves no names in the notebook's namespace.
PROBE = r'''
def _sockserv_probe():
    import gc, glob, json, os, sysconfig, tempfile, threading

    def descriptors():
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return None  # no /proc here
        targets = []
        for name in names:
            try:
                targets.append(os.readlink(f"/proc/self/fd/{name}"))
            except OSError:
                pass  # the descriptor listdir itself used, closed by now
        return sorted(targets)

    def children():  # zombies included, until reaped
        files = glob.glob("/proc/self/task/*/children")
        if not files:
            return None
        pids = []
        for path in files:
            try:
                with open(path) as f:
                    pids += [int(pid) for pid in f.read().split()]
            except OSError:
                pass  # that thread ended while we looked
        return sorted(pids)

    def own_files(folder):
        found = []
        for root, dirs, files in os.walk(folder):
            found += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + files]
        return sorted(found)

    gc.collect()  # a socket nobody references is closed now, not counted
    return {
        "tmpdir": tempfile.gettempdir(),
        "packages": sysconfig.get_paths()["purelib"],
        "threads": sorted(t.name for t in threading.enumerate()),
        "descriptors": descriptors(),
        "children": children(),
        "files": own_files(tempfile.gettempdir()),
    }

print(__import__("json").dumps(_sockserv_probe()))
del _sockserv_probe
'''


def _run_cell(client, nb, source):
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def probe(client, nb):
    """What the kernel holds now (see PROBE)."""
    return json.loads(_run_cell(client, nb, PROBE).strip().splitlines()[-1])


def run_between_probes(nb, cwd, cleanup=None):
    """Run every code cell of ``nb`` in a fresh kernel with its own TMPDIR; return both probes.

    ``cleanup`` (source code) runs after the second probe, before the kernel stops.
    """
    kernel_tmp = tempfile.mkdtemp(prefix="k-")  # inside this test's own TMPDIR
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    # The kernel's environment is ours, with its own TMPDIR.
    with client.setup_kernel(env={**os.environ, "TMPDIR": kernel_tmp}):
        before = probe(client, nb)
        assert before["tmpdir"] == kernel_tmp, "the kernel did not get its own TMPDIR"
        for index, cell in enumerate(list(nb.cells)):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        after = probe(client, nb)
        if cleanup:
            _run_cell(client, nb, cleanup)
    return before, after


#: ipykernel gives every thread that prints its own zmq socket ("event pipe", whose zmq
#: mailbox is an eventfd) and closes it only in a sweep every 10 s after the thread ends
#: (ipykernel/iostream.py, ``_event_pipe_gc_seconds``).  A lesson's handler thread that
#: printed can so leave one behind for a while: the kernel's, not the lesson's.  Nothing a
#: lesson does through socket or socketserver opens an eventfd.
KERNEL_EVENT_PIPE = "anon_inode:[eventfd]"


# Files inside the installed packages are a library's own cache, not a lesson's leak:
# matplotlib 3.10 (on Python 3.10) keeps the font files it drew with open for reuse.


def left_behind(before, after):
    """``{kind: what is new}`` for each kind of thing the notebook left in its kernel.

    Counted, not only compared as sets: a second ``anon_inode:[eventpoll]`` (a
    selector never closed) has the same name as the kernel's own.
    """
    leaks = {}
    for kind in ("threads", "descriptors", "children", "files"):
        if before[kind] is None or after[kind] is None:
            continue  # this platform cannot tell
        new = sorted((collections.Counter(after[kind]) - collections.Counter(before[kind])).elements())
        if kind == "descriptors":
            packages = after["packages"] + os.sep
            new = [target for target in new
                   if target != KERNEL_EVENT_PIPE and not target.startswith(packages)]
        if new:
            leaks[kind] = new
    return leaks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_leaves_nothing_running(path):
    before, after = run_between_probes(nbformat.read(path, as_version=4), path.parent)
    assert left_behind(before, after) == {}


LEAKY_CELLS = [
    "import os, socket, subprocess, sys, tempfile, threading",
    "stop = threading.Event()\n"
    "thread = threading.Thread(target=stop.wait, args=(30,), name='left-running', daemon=True)\n"
    "thread.start()",
    "listener = socket.socket(socket.AF_UNIX)\n"
    "listener.bind(os.path.join(tempfile.gettempdir(), 'left.sock'))",
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])",
]
CLEANUP = (
    "stop.set(); thread.join()\n"
    "listener.close(); os.unlink(os.path.join(tempfile.gettempdir(), 'left.sock'))\n"
    "child.kill(); child.wait()"
)


@pytest.mark.skipif(not pathlib.Path("/proc/self/fd").is_dir(), reason="descriptor and child counts need /proc")
def test_the_probe_sees_each_kind_of_leak(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in LEAKY_CELLS])
    before, after = run_between_probes(nb, tmp_path, cleanup=CLEANUP)
    leaks = left_behind(before, after)
    assert set(leaks) == {"threads", "descriptors", "children", "files"}, leaks
    assert leaks["threads"] == ["left-running"]
    assert leaks["files"] == ["left.sock"]
    assert len(leaks["children"]) == 1
    assert any(target.startswith("socket:") for target in leaks["descriptors"]), leaks
