"""Waiting for a subprocess under test without ever hanging the suite."""

import contextlib
import signal
import subprocess


def wait_or_dump(process, timeout, grace):
    """Return the process's exit status, or None if it still runs after timeout.

    A process that hangs is sent SIGABRT first, so that faulthandler (the
    tests start commands with PYTHONFAULTHANDLER=1) prints every thread's
    stack on its stderr: the failing test then shows where it was stuck.
    """
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        if hasattr(signal, "SIGABRT"):
            process.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
        return None


def end(process, readers, timeout):
    """Kill the process if it still runs, reap it, join its pipe readers, close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout)
    for reader in readers:
        reader.join(timeout)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
