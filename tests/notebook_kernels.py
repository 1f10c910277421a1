"""How nbval runs each lesson: a private kernel, and a check that the lesson left nothing behind.

A pytest plugin, registered for the whole repository by the root ``conftest.py``
(a ``conftest.py`` under tests/ would not apply to the notebooks/ folder).  For
every notebook nbval runs:

* **Its kernel talks over Unix sockets, not TCP ports.**  Over TCP, the kernel
  manager picks five free ports and the kernel binds them a second or two later,
  once it has started; tests running beside it (thousands of connections from
  127.0.0.1) can take one of them in between, and the kernel then dies at start
  ("Kernel died before replying to kernel_info", seen on a fresh 3.13 venv whose
  kernels start slowly).  A socket file in a folder of its own cannot be taken.
  Where zmq has no ``ipc`` transport (Windows), TCP is kept.
* **Its kernel gets a TMPDIR of its own**, so what a lesson creates with
  ``tempfile`` lands where nothing else writes; the folder is removed afterwards.
* **It must leave nothing behind.**  A probe runs inside the kernel after the
  kernel starts and again after the last cell, and reports only what belongs to
  the kernel: its threads (``threading.enumerate()``), its open descriptors
  (``/proc/self/fd``), its children, zombies included
  (``/proc/self/task/*/children``), and the files in its TMPDIR.  Anything new
  fails the notebook's last cell at teardown ("ERROR at teardown of ...::Cell N"),
  naming what was left.  Nothing machine-wide is looked at, so another program,
  or another run of this suite, cannot make it fail.  Where ``/proc`` is missing
  (macOS, Windows) descriptors and children are not counted; the rest is.

The probe is skipped when a cell of the notebook failed (that failure is the
news) or when only some of its cells were selected (``--lf``, ``-k``, a node
id): a notebook run in part may well hold what its later cells would close.
``tests/test_notebooks_leave_nothing.py`` runs a notebook that leaks one of each
kind on purpose, and a clean one, through this plugin.
"""

import collections
import json
import os
import shutil
import signal
import tempfile
import time
from queue import Empty

import pytest

#: Seconds the probe may take inside the kernel (it lists a few folders).
PROBE_TIMEOUT = 30

# Runs inside the kernel; prints one JSON line describing what the kernel holds now.
# One function, deleted again: the probe leaves no names in the notebook's namespace.
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

#: ipykernel gives every thread that prints its own zmq socket ("event pipe", whose zmq
#: mailbox is an eventfd) and closes it only in a sweep every 10 s after the thread ends
#: (ipykernel/iostream.py, ``_event_pipe_gc_seconds``).  A lesson's handler thread that
#: printed can so leave one behind for a while: the kernel's, not the lesson's.  Nothing a
#: lesson does through socket or socketserver opens an eventfd.
KERNEL_EVENT_PIPE = "anon_inode:[eventfd]"


def left_behind(before, after):
    """``{kind: what is new}`` for each kind of thing the notebook left in its kernel.

    Counted, not only compared as sets: a second ``anon_inode:[eventpoll]`` (a
    selector never closed) has the same name as the kernel's own.  Files inside
    the installed packages are a library's own cache, not a lesson's leak
    (matplotlib keeps the font files it drew with open for reuse).
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


def run_in_kernel(kernel, source, timeout=PROBE_TIMEOUT):
    """Run ``source`` in nbval's running kernel; return what it printed to stdout.

    Raises RuntimeError if the code raised, and ``queue.Empty`` if the kernel
    did not finish within ``timeout`` seconds.  nbval skips messages meant for
    other requests, so this one's leave nothing in its way.
    """
    msg_id = kernel.kc.execute(source, store_history=False, allow_stdin=False, stop_on_error=False)
    deadline = time.monotonic() + timeout
    printed, error = [], None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Empty(f"the kernel did not finish the probe within {timeout} s")
        msg = kernel.get_message(stream="iopub", timeout=remaining)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            printed.append(content["text"])
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            break
    kernel.await_reply(msg_id, timeout=max(0.1, deadline - time.monotonic()))
    if error:
        raise RuntimeError(f"the probe failed in the kernel: {error}")
    return "".join(printed)


def probe(kernel):
    """What the kernel holds now (see PROBE)."""
    return json.loads(run_in_kernel(kernel, PROBE).strip().splitlines()[-1])


def describe(leaks):
    """One line per kind: ``threads: ['left-running']``."""
    return "\n".join(f"  {kind}: {items}" for kind, items in leaks.items())


# -- the kernel ------------------------------------------------------------------

def _kernel_manager_class():
    from jupyter_client.manager import KernelManager
    import zmq

    class PrivateKernelManager(KernelManager):
        """A KernelManager whose kernel has a folder of its own: its Unix sockets and its TMPDIR.

        ``folder/ipc-N`` are the kernel's sockets (where zmq has ``ipc``), and
        ``folder/tmp`` is its TMPDIR.  ``remove_folder()`` deletes both once
        the kernel has stopped.
        """

        def __init__(self, **kwargs):
            folder = tempfile.mkdtemp(prefix="kernel-")
            if zmq.has("ipc"):
                # An absolute path: the kernel starts in the notebook's folder, not ours.
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", os.path.join(folder, "ipc"))
            super().__init__(**kwargs)
            self.sockserv_folder = folder
            self.sockserv_tmpdir = os.path.join(folder, "tmp")
            os.mkdir(self.sockserv_tmpdir)

        def start_kernel(self, **kwargs):
            env = dict(kwargs.pop("env", None) or os.environ)
            env["TMPDIR"] = self.sockserv_tmpdir
            return super().start_kernel(env=env, **kwargs)

        def remove_folder(self):
            shutil.rmtree(self.sockserv_folder, ignore_errors=True)

    return PrivateKernelManager


def pytest_configure(config):
    try:
        import nbval.kernel
    except ImportError:
        return  # no nbval here: nothing to set up
    # nbval builds its KernelManager by this module-level name (nbval 0.11).
    config._sockserv_nbval_manager = nbval.kernel.KernelManager
    nbval.kernel.KernelManager = _kernel_manager_class()


def pytest_unconfigure(config):
    original = getattr(config, "_sockserv_nbval_manager", None)
    if original is not None:
        import nbval.kernel
        nbval.kernel.KernelManager = original


# -- which notebooks are probed ----------------------------------------------------

def _notebook_of(item):
    """The nbval notebook (an ``IPyNbFile``) that ``item`` is a cell of, or None."""
    parent = item.parent
    if type(item).__module__.startswith("nbval") and type(parent).__name__ == "IPyNbFile":
        return parent
    return None


def pytest_collection_finish(session):
    """Mark the notebooks all of whose code cells will run: only those are probed."""
    selected = collections.Counter()
    notebooks = {}
    for item in session.items:
        notebook = _notebook_of(item)
        if notebook is not None:
            selected[notebook.nodeid] += 1
            notebooks[notebook.nodeid] = notebook
    for nodeid, notebook in notebooks.items():
        code_cells = sum(1 for cell in notebook.nb.cells if cell.cell_type == "code")
        notebook.sockserv_whole = selected[nodeid] == code_cells


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    result = yield  # the first cell's set-up starts the notebook's kernel
    notebook = _notebook_of(item)
    if (notebook is not None and getattr(notebook, "sockserv_whole", False)
            and not hasattr(notebook, "sockserv_before")):
        notebook.sockserv_before = probe(notebook.kernel)
        if notebook.sockserv_before["tmpdir"] != notebook.kernel.km.sockserv_tmpdir:
            pytest.fail("the notebook's kernel did not get its own TMPDIR", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    notebook = _notebook_of(item)
    if notebook is not None and report.failed:
        notebook.sockserv_failed = True
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    notebook = _notebook_of(item)
    last = notebook is not None and (nextitem is None or nextitem.parent is not notebook)
    leaks = {}
    if (last and hasattr(notebook, "sockserv_before") and not getattr(notebook, "sockserv_failed", False)
            and notebook.kernel.is_alive()):
        after = probe(notebook.kernel)
        leaks = left_behind(notebook.sockserv_before, after)
        for pid in leaks.get("children", []):
            # Stop a leaked child now, so it does not outlive the kernel (and this run).
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # nbval's teardown deletes the kernel's manager (RunningKernel.stop): hold on to it.
    manager = getattr(getattr(notebook, "kernel", None), "km", None) if last else None
    try:
        result = yield  # the last cell's teardown stops the notebook's kernel
    finally:
        if manager is not None and hasattr(manager, "remove_folder"):
            manager.remove_folder()
    if leaks:
        pytest.fail(f"{notebook.path.name} left this behind in its kernel:\n{describe(leaks)}",
                    pytrace=False)
    return result
