"""The leak guard in conftest.py catches what it promises to, and nothing else.

A separate pytest process runs a few deliberately leaky tests next to clean
ones, with a copy of our conftest.py and the support modules it imports
(every module in tests/ that is not a test file).
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

LEAKY_TESTS = '''
import os
import socket
import threading
import time

import helpers

# These tests fork on purpose; only the fork warning of Python 3.12+ is ignored.
pytestmark = helpers.FORK_WARNING

kept = []


def test_clean(running_server):
    impl = helpers.IMPLEMENTATIONS["sockserv"]
    server_class = impl.ForkingTCPServer
    server = running_server(server_class, helpers.recording_handler(impl, server_class))
    assert helpers.exchange(server, b"hi\\n") == b"hi\\n"


def test_leaks_thread():
    stop = threading.Event()
    kept.append(stop)
    threading.Thread(target=stop.wait, args=(30,), daemon=True).start()


def test_leaks_socket():
    kept.append(socket.socket())


def test_leaks_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)


def test_leaks_zombie():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    while open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z":
        time.sleep(0.01)


def test_child_that_returns_into_pytest_is_stopped():
    pid = os.fork()
    if pid == 0:
        return  # a child must never run pytest's teardown: the guard exits it
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 70
'''


def summary_counts(output):
    """The counts in pytest's last summary line, {"passed": 6, "errors": 4}, without warnings."""
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
    assert summary, output
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (\w+)", summary[-1])}
    counts.pop("warnings", None)
    counts.pop("warning", None)
    return counts


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the guard's full checks need /proc")
def test_guard_reports_each_kind_of_leak(tmp_path):
    here = os.path.dirname(__file__)
    for name in os.listdir(here):
        if name.endswith(".py") and not name.startswith("test_"):
            shutil.copy(os.path.join(here, name), tmp_path / name)
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    # Leaked threads are released when the leaky tests' process exits.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q",
         "--rootdir", str(tmp_path), str(tmp_path / "test_leaky.py")],
        cwd=tmp_path,
        # No third-party plugins: they are not needed and cost seconds to import.
        env={**os.environ, "SOCKSERV_LEAK_SETTLE": "0.3", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    errors = {line.split("::")[1].split(" ")[0] for line in output.splitlines() if line.startswith("ERROR ")}
    assert errors == {"test_leaks_thread", "test_leaks_socket", "test_leaks_child", "test_leaks_zombie"}, output
    # The leaky tests themselves pass; the guard fails them in teardown (an error).
    # Compare the counts, not the line: pytest puts others in between ("4 warnings").
    assert summary_counts(output) == {"passed": 6, "errors": 4}, output
    assert "threads still running" in output and "socket fds left open" in output
    # Count the full reports in the error sections, not the short summary,
    # whose lines are cut to the terminal's width.
    reports = [line for line in output.splitlines() if line.startswith("test leaked resources:")]
    assert sum("child processes left behind" in line for line in reports) == 2, output
