"""ThreadingMixIn and ForkingMixIn: where each request runs, and cleaning up after it.

Forked children only touch sockets; the parent reaps every one of them
(the leak guard fails a test that leaves a child or a zombie behind).
"""

import os
import threading

import pytest

from helpers import (
    FORKING,
    STREAM,
    THREADING,
    TIMEOUT,
    exchange,
    exchange_by_handle_request,
    handler_base,
    hook_sequences,
    ok_request_hooks,
    recording,
    recording_handler,
    recv_until_eof,
    servers,
    stream_client,
    wait_until,
)

FORKING_STREAM = tuple(n for n in FORKING if n in STREAM)
#: How long the loop is given to (wrongly) serve a request it must hold back.
STILL_BLOCKED = 0.05

# -- ThreadingMixIn ------------------------------------------------------------------------


@pytest.mark.parametrize("daemon", [False, True], ids=["threads", "daemon_threads"])
@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_each_request_runs_in_a_new_thread(running_server, impl, server_class, daemon):
    seen = []

    class Where(recording_handler(impl, server_class)):
        def handle(self):
            seen.append(threading.current_thread())
            super().handle()

    server = running_server(server_class, Where, serve=False, daemon_threads=daemon)
    assert [exchange_by_handle_request(server, b"%d\n" % n) for n in range(2)] == [b"0\n", b"1\n"]
    running_server.stop(server)
    for thread in seen:
        thread.join(TIMEOUT)  # server_close() does not wait for daemon threads
    assert len(set(seen)) == 2
    assert threading.current_thread() not in seen  # the thread that called handle_request()
    assert [thread.daemon for thread in seen] == [daemon, daemon]


@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_process_request_thread_is_the_thread_body(running_server, impl, server_class):
    class Server(recording(server_class)):
        def process_request_thread(self, request, client_address):
            self.record("process_request_thread")
            super().process_request_thread(request, client_address)

    server = running_server(Server, recording_handler(impl, server_class), serve=False)
    assert exchange_by_handle_request(server, b"x\n") == b"x\n"
    running_server.stop(server)
    assert hook_sequences(server.events) == {
        "loop": [["get_request", "verify_request", "process_request"]],
        "thread": [["process_request_thread"] + ok_request_hooks()],
    }


@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_threads_serve_requests_at_the_same_time(running_server, impl, server_class):
    meeting = threading.Barrier(2, timeout=TIMEOUT)

    class Meet(recording_handler(impl, server_class)):
        def handle(self):
            meeting.wait()  # passes only when both handlers run at once
            super().handle()

    server = running_server(server_class, Meet)
    replies = {}

    def ask(n):
        replies[n] = exchange(server, b"%d\n" % n)

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(2)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(2 * TIMEOUT)
    assert replies == {0: b"0\n", 1: b"1\n"}


# -- ForkingMixIn ---------------------------------------------------------------------------


def _pid_handler(impl, server_class):
    class Pid(handler_base(impl, server_class)):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(b"%d" % os.getpid())

    return Pid


def _assert_reaped(pids):
    """No zombie is left behind for any of these children.

    waitpid() raises ChildProcessError for a pid that is no child of ours any more
    (reaped).  On a busy machine the number may already have been given to a new
    child (pids wrap at 32768 here): then waitpid() finds it running and returns 0.
    Only a child that it can reap now, a zombie, was left behind.
    """
    for pid in pids:
        try:
            found, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # reaped
        assert found == 0, f"child {pid} was left as a zombie"


@pytest.mark.parametrize("impl, server_class", servers(*FORKING))
def test_each_request_runs_in_a_child_that_gets_reaped(running_server, impl, server_class):
    forked = []

    class Counted(server_class):
        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            forked.append(request)  # the parent has listed this child by now

    server = running_server(Counted, _pid_handler(impl, server_class))
    assert server.active_children is None  # before the first fork
    pids = [int(exchange(server, b"pid?\n")) for _ in range(3)]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    # A child can answer before os.fork() has returned in the parent, so the last pid may not
    # be listed yet when its reply arrives: an empty set then would prove nothing.
    assert wait_until(lambda: len(forked) == 3)
    # service_actions() reaps finished children as the loop turns.
    assert wait_until(lambda: server.active_children == set())
    _assert_reaped(pids)


@pytest.mark.parametrize("impl, server_class", servers(*FORKING))
def test_handle_request_timeout_reaps_children(running_server, impl, server_class):
    server = running_server(server_class, _pid_handler(impl, server_class), serve=False, timeout=0.01)
    pid = int(exchange_by_handle_request(server, b"pid?\n"))
    assert server.active_children == {pid}  # handle_request() itself does not reap

    def reaped():
        server.handle_request()  # nothing arrives: handle_timeout() collects children
        return server.active_children == set()

    assert wait_until(reaped)
    _assert_reaped([pid])


@pytest.mark.parametrize("impl, server_class", servers(*FORKING_STREAM))
def test_max_children_makes_the_loop_wait_for_a_child(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class), max_children=1)
    with stream_client(server) as first:
        assert wait_until(lambda: server.active_children)  # the first child waits for our line
        with stream_client(server) as second:
            second.sendall(b"second\n")
            second.settimeout(STILL_BLOCKED)
            with pytest.raises(TimeoutError):
                second.recv(100)  # not served: the loop waits for the first child to exit
            second.settimeout(TIMEOUT)
            first.sendall(b"first\n")
            assert recv_until_eof(first) == b"first\n"
            assert recv_until_eof(second) == b"second\n"


@pytest.mark.parametrize("impl, server_class", servers(*FORKING))
def test_child_exit_status_is_1_after_an_error(running_server, impl, server_class):
    class Unreaped(recording(server_class)):
        def collect_children(self, *, blocking=False):
            pass  # this test reaps the children itself, to see their exit status

    server = running_server(Unreaped, recording_handler(impl, server_class))
    assert exchange(server, b"fine\n") == b"fine\n"
    assert exchange(server, b"raise boom\n") == b""
    running_server.stop_serving(server)
    statuses = {}

    def all_exited():
        for pid in server.active_children - statuses.keys():
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = os.waitstatus_to_exitcode(status)
        return len(statuses) == len(server.active_children)

    assert wait_until(all_exited)
    running_server.stop(server)  # also collects the children's reports
    failed = {who for where, who, name in server.events if where == "child" and name == "handle_error"}
    assert len(statuses) == 2 and len(failed) == 1
    assert statuses == {pid: 1 if pid in failed else 0 for pid in statuses}
