"""Every lesson cleans up after itself: no thread, child, socket or socket file left.

nbval checks what a notebook prints; this checks what it leaves behind.  Each
notebook runs in a fresh kernel, with a probe run before its first cell and
after its last, in the same kernel; the two probes must agree.
"""

import json
import pathlib

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

# Runs inside the kernel; prints one JSON line describing what is alive now.
PROBE = r'''
import gc as _gc, json as _json, os as _os, pathlib as _pathlib, socket as _socket
import stat as _stat, tempfile as _tempfile, threading as _threading

def _socket_files():
    found = []
    for path in _pathlib.Path(_tempfile.gettempdir()).glob("**/*"):
        try:
            if _stat.S_ISSOCK(path.lstat().st_mode):
                found.append(str(path))
        except OSError:
            pass
    return sorted(found)

def _children():
    try:
        return _os.waitpid(-1, _os.WNOHANG)[0] != 0 or "running"
    except ChildProcessError:
        return None

print(_json.dumps({
    "threads": sorted(t.name for t in _threading.enumerate()),
    "sockets": sum(1 for o in _gc.get_objects()
                   if isinstance(o, _socket.socket) and o.fileno() != -1),
    "children": _children(),
    "socket_files": _socket_files(),
}))
'''


def probe(client, nb):
    cell = nbformat.v4.new_code_cell(PROBE)
    nb.cells.append(cell)
    client.execute_cell(cell, len(nb.cells) - 1)
    nb.cells.pop()
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_leaves_nothing_running(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        before = probe(client, nb)
        for index, cell in enumerate(list(nb.cells)):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        after = probe(client, nb)
    assert after == before
