"""The serve loop: shutdown() timing rules, the wake-up, running out of descriptors.

Parity first: what shutdown() does before a loop runs and after one has
ended is the stdlib's, and the tests run both.  Then sockserv's own design,
which the stdlib does not share (so those tests run sockserv only): the
loop wakes at once on shutdown(), and after accept() fails with EMFILE it
leaves the listener alone for a growing number of turns instead of
spinning.  Nothing here measures time: the tests count loop turns
(service_actions() calls) and accept attempts, and "at once" is proved by
a poll_interval far longer than the test's bound.
"""

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import sockserv
from helpers import (
    ALL,
    TIMEOUT,
    class_names,
    exchange,
    on_both,
    recording,
    recording_handler,
    servers,
    wait_until,
)
from sockserv import servers as core_servers

#: A poll_interval no test may wait for: returning within TIMEOUT proves the wake-up.
FOREVER = 600.0
STILL_BLOCKED = 0.05


def _start(target, *args):
    thread = threading.Thread(target=target, args=args, name=f"test {target.__name__}")
    thread.start()
    return thread


# -- parity: when shutdown() comes before or after a loop ----------------------------


@pytest.mark.parametrize("name", class_names("TCPServer", "UDPServer"))
def test_shutdown_before_any_loop_waits_for_one_and_stops_it_at_once(running_server, name):
    outcomes = {}
    for label, impl, server_class in on_both(name):
        server = running_server(recording(server_class), None, serve=False)
        stopper = _start(server.shutdown)
        stopper.join(STILL_BLOCKED)
        waited = stopper.is_alive()  # no loop yet: shutdown() waits for one
        server.serve_forever(poll_interval=0.01)  # returns at once, before any turn
        stopper.join(TIMEOUT)
        outcomes[label] = (waited, stopper.is_alive(), [e[2] for e in server.events])
    assert outcomes["stdlib"] == (True, False, [])
    assert outcomes["sockserv"] == outcomes["stdlib"]


@pytest.mark.parametrize("name", class_names("TCPServer", "UDPServer"))
def test_shutdown_after_the_loop_ended_returns_and_stops_the_next_loop(running_server, name):
    """A stale shutdown(): returns at once, and the next serve_forever() leaves at once."""
    outcomes = {}
    for label, impl, server_class in on_both(name):
        server = running_server(recording(server_class), None, serve=False)
        running_server.serve(server, poll_interval=0.01)
        running_server.stop_serving(server)
        before = len(server.events)
        server.shutdown()  # no loop runs, but one has ended: returns at once
        server.serve_forever(poll_interval=0.01)  # the request is still pending: no turn
        outcomes[label] = server.events[before:]
    assert outcomes["stdlib"] == []
    assert outcomes["sockserv"] == outcomes["stdlib"]


# -- sockserv's wake-up ----------------------------------------------------------------


@pytest.mark.parametrize("name", class_names(*ALL))
def test_shutdown_wakes_the_loop_at_once(running_server, name):
    server_class = getattr(sockserv, name)
    server = running_server(recording(server_class), recording_handler(sockserv, server_class),
                            serve=False)
    running_server.serve(server, poll_interval=FOREVER)
    assert exchange(server, b"one\n") == b"one\n"
    # The wait that follows the request would last FOREVER without the wake-up.
    running_server.stop_serving(server)  # fails if shutdown() takes longer than TIMEOUT
    loop = [name for where, _, name in server.events if where == "loop"]
    # One turn for the request (service_actions after it), none for the wake-up.
    assert loop.count("service_actions") == 1


def test_the_wake_up_socket_exists_only_while_a_loop_runs(running_server, monkeypatch):
    """Both ends are closed when serve_forever() returns (the leak guard checks the rest)."""
    server = running_server(sockserv.TCPServer, None, serve=False)
    opened = []
    real_socketpair = socket.socketpair

    def spy():
        pair = real_socketpair()
        opened.extend(pair)
        return pair

    monkeypatch.setattr(core_servers.socket, "socketpair", spy)
    running_server.serve(server, poll_interval=FOREVER)
    assert wait_until(lambda: opened)
    assert all(sock.fileno() >= 0 for sock in opened)
    running_server.stop_serving(server)
    assert len(opened) == 2 and all(sock.fileno() == -1 for sock in opened)


def test_without_a_wake_up_socket_the_loop_still_stops_at_its_next_turn(running_server, monkeypatch):
    """Out of descriptors when the loop starts: no socket pair, and shutdown() still works."""
    server = running_server(recording(sockserv.TCPServer), None, serve=False)

    def no_descriptors():
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(core_servers.socket, "socketpair", no_descriptors)
    running_server.serve(server, poll_interval=0.01)
    assert wait_until(lambda: server.events)  # the loop turns
    running_server.stop_serving(server)
    monkeypatch.undo()
    assert {name for _, _, name in server.events} == {"service_actions"}


# -- private state does not collide with a subclass's ----------------------------------

#: Parameters (impl, server_class) for sockserv's classes only.
SOCKSERV_SERVERS = [param for param in servers(*ALL) if param.id.startswith("sockserv-")]

#: Names a subclass or a mix-in might well use; the course's examples use the first three.
SUBCLASS_NAMES = ("_stopped", "_stopping", "_serving", "_stop_requested", "_loop_stopped",
                  "_threads", "_handler_threads", "_selector", "_wake_up", "_lock")


@pytest.mark.parametrize("impl, server_class", SOCKSERV_SERVERS)
def test_a_subclass_may_use_any_single_underscore_name(running_server, impl, server_class):
    class Busy(server_class):
        def __init__(self, *args, **kwargs):
            for name in SUBCLASS_NAMES:
                setattr(self, name, f"mine: {name}")
            super().__init__(*args, **kwargs)

        def service_actions(self):
            super().service_actions()
            self._serving = self._stopping = self._stopped = "still mine"

    server = running_server(Busy, recording_handler(impl, server_class))
    assert exchange(server, b"hello\n") == b"hello\n"
    running_server.stop(server)
    for name in SUBCLASS_NAMES:
        expected = "still mine" if name in ("_serving", "_stopping", "_stopped") else f"mine: {name}"
        assert getattr(server, name) == expected, name


@pytest.mark.parametrize("impl, server_class", SOCKSERV_SERVERS)
def test_sockserv_keeps_its_private_state_name_mangled(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class))
    assert exchange(server, b"hello\n") == b"hello\n"
    running_server.stop(server)
    private = [name for name in vars(server) if name.startswith("_")]
    assert private and all(name.startswith(("_BaseServer__", "_ThreadingMixIn__")) for name in private), private


# -- accept() out of descriptors: pause the listener, do not spin --------------------------


def _turns_between_accepts(events):
    """service_actions() calls between one get_request() and the next, for each gap."""
    gaps, count, seen = [], 0, False
    for _, _, name in events:
        if name == "get_request":
            if seen:
                gaps.append(count)
            seen, count = True, 0
        elif name == "service_actions":
            count += 1
    return gaps


@pytest.mark.parametrize("name", class_names("TCPServer", "ThreadingTCPServer"))
def test_emfile_on_accept_pauses_the_listener_for_growing_turns(running_server, name):
    """The stdlib tries again on the very next turn (a busy loop); sockserv waits 1, 2, 4 turns."""
    gaps = {}
    for label, impl, server_class in on_both(name):

        class OutOfDescriptors(recording(server_class)):
            failures_left = 3

            def get_request(self):
                self.record("get_request")
                if self.failures_left:
                    self.failures_left -= 1
                    # As a real EMFILE: the connection stays queued, the listener readable.
                    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
                return server_class.get_request(self)

        server = running_server(OutOfDescriptors, recording_handler(impl, server_class), serve=False)
        running_server.serve(server, poll_interval=0.01)
        assert exchange(server, b"at last\n") == b"at last\n"
        running_server.stop(server)
        gaps[label] = _turns_between_accepts(server.events)[:3]
    # Each gap counts the failing turn's own service_actions() call too.
    assert gaps == {"stdlib": [1, 1, 1], "sockserv": [2, 3, 5]}


class _FakeSelector:
    def __init__(self):
        self.calls = []

    def register(self, fileobj, events):
        self.calls.append("register")

    def unregister(self, fileobj):
        self.calls.append("unregister")


@pytest.mark.parametrize("poll_interval, longest", [(0.25, 4), (0.5, 2), (2.0, 1), (None, 1)])
def test_the_pause_grows_to_about_a_second_of_turns(poll_interval, longest):
    selector = _FakeSelector()
    watch = core_servers._ListenerWatch(selector, object(), poll_interval)
    pauses = []
    for _ in range(6):
        watch.after_request(out_of_resources=True)
        turns = 0
        while selector.calls[-1] == "unregister":
            watch.end_of_turn()
            turns += 1
        pauses.append(turns - 1)  # not counting the turn that failed
    assert pauses == [min(2 ** n, longest) for n in range(6)]
    assert watch.timeout == poll_interval  # re-armed: the caller's poll_interval again
    watch.after_request(out_of_resources=False)  # a request came through: start again
    watch.after_request(out_of_resources=True)
    assert watch.turns_left == 2
    # While paused with poll_interval=None, a turn still ends (after the longest pause).
    assert watch.timeout == (poll_interval if poll_interval is not None else watch.LONGEST)


REAL_EMFILE = textwrap.dedent(r'''
    """Run out of descriptors for real, in this process only, and report what the loop did."""
    import errno, json, os, resource, socket, threading, time
    import sockserv

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    fillers, report = [], {"accept_errors": [], "turns_since_first_error": 0, "gaps": []}
    count = {"turns": 0}

    class Echo(sockserv.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line)

    class Server(sockserv.ThreadingTCPServer):
        daemon_threads = True

        def get_request(self):
            report["gaps"].append(count["turns"])
            count["turns"] = 0
            try:
                return super().get_request()
            except OSError as exc:
                report["accept_errors"].append(errno.errorcode.get(exc.errno, str(exc)))
                raise

        def service_actions(self):
            count["turns"] += 1
            if report["accept_errors"]:
                report["turns_since_first_error"] += 1
                if report["turns_since_first_error"] == 6:
                    while fillers:  # descriptors are free again
                        os.close(fillers.pop())

    with Server(("127.0.0.1", 0), Echo) as server:
        loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
        loop.start()
        first = socket.create_connection(server.server_address, timeout=5)
        first.sendall(b"before\n")
        assert first.recv(100) == b"before\n"
        second = socket.socket()  # its descriptor, before there are none left
        second.settimeout(5)
        try:
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        second.connect(server.server_address)  # queued: accept() now fails with EMFILE
        second.sendall(b"after\n")
        deadline = time.monotonic() + 5
        while not report["accept_errors"] and time.monotonic() < deadline:
            time.sleep(0.01)
        first.sendall(b"during\n")  # a connected client is served meanwhile
        report["during"] = first.recv(100).decode()
        report["after"] = second.recv(100).decode()  # accepted once descriptors are free
        server.shutdown()
        loop.join()
        first.close()
        second.close()
    print(json.dumps(report))
''')


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux",
                    reason="RLIMIT_NOFILE and the EMFILE errno as on Linux")
def test_real_emfile_pauses_accept_and_resumes_when_descriptors_are_free(tmp_path):
    script = tmp_path / "emfile.py"
    script.write_text(REAL_EMFILE)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["during"] == "during\n" and report["after"] == "after\n"
    # Descriptors came back 6 turns after the first failure.  The retries came
    # 2, 3 and 5 turns after each failure (1, 2 and 4 idle turns, plus the
    # failing turn itself); the third retry, after the release, succeeded.
    assert report["accept_errors"] == ["EMFILE"] * 3
    assert report["gaps"][-3:] == [2, 3, 5]
