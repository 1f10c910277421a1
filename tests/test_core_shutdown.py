"""Stopping: shutdown() ends the loop, server_close() releases the socket and waits for work.

"Returns promptly" is a hang check with a generous bound (helpers.TIMEOUT),
never a speed assertion.  "Still waiting" is checked after a short join on
a thread that cannot finish before the test releases it, so it cannot flake.
"""

import os
import threading

import pytest

from helpers import (
    ALL,
    FORKING,
    STREAM,
    SYNC,
    THREADING,
    TIMEOUT,
    blocking_handler,
    client_for,
    errors,
    exchange,
    exchange_by_handle_request,
    is_stream,
    read_reply,
    recording,
    recording_handler,
    send_request,
    recv_until_eof,
    servers,
    stream_client,
    wait_until,
)

#: How long a thread that must still be blocked is given to (wrongly) finish.
STILL_BLOCKED = 0.05


def _start(target):
    thread = threading.Thread(target=target, name=f"test {target.__name__}")
    thread.start()
    return thread


@pytest.mark.parametrize("impl, server_class", servers(*ALL))
def test_shutdown_stops_the_loop_keeps_the_socket_and_can_restart(running_server, impl, server_class):
    server = running_server(recording(server_class), recording_handler(impl, server_class))
    assert exchange(server, b"before\n") == b"before\n"
    serving = running_server.thread(server)
    running_server.stop_serving(server)  # shutdown() returns and serve_forever() returns, bounded
    assert not serving.is_alive()
    assert server.socket.fileno() >= 0, "shutdown() must not close the socket"
    # A request that comes now waits in the socket until someone handles it.
    assert exchange_by_handle_request(server, b"after\n") == b"after\n"
    # And serve_forever() can run again.
    running_server.serve(server)
    assert exchange(server, b"again\n") == b"again\n"


@pytest.mark.parametrize("impl, server_class", servers(*SYNC))
def test_shutdown_waits_for_the_request_in_progress(running_server, impl, server_class):
    handler = blocking_handler(impl, server_class)
    server = running_server(server_class, handler)
    with client_for(server) as client:
        send_request(client, server, b"slow\n")
        assert handler.entered.wait(TIMEOUT)
        stopper = _start(server.shutdown)
        stopper.join(STILL_BLOCKED)
        assert stopper.is_alive(), "shutdown() returned while the loop was still in a request"
        handler.release.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert read_reply(client) == b"slow\n"


def _reply_after_close(server, client):
    """What the client gets once the handler finishes after server_close().

    A connection belongs to the handler, so a stream client gets its reply.
    A datagram reply goes out through the server's socket, which is closed
    by now: the reply is lost and handle_error() sees EBADF.
    """
    if is_stream(type(server)):
        assert errors(server.events) == []
        return read_reply(client)
    assert errors(server.events) == ["OSError: [Errno 9] Bad file descriptor"]
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)
    return None


@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_server_close_joins_handler_threads(running_server, impl, server_class):
    handler = blocking_handler(impl, server_class)
    server = running_server(recording(server_class), handler)
    with client_for(server) as client:
        send_request(client, server, b"slow\n")
        assert handler.entered.wait(TIMEOUT)
        # shutdown() only stops the loop: it does not wait for handler threads.
        running_server.stop_serving(server)
        assert not handler.finished.is_set()
        closer = _start(server.server_close)
        closer.join(STILL_BLOCKED)
        assert closer.is_alive(), "server_close() returned before the handler thread finished"
        handler.release.set()
        closer.join(TIMEOUT)
        assert not closer.is_alive()
        assert handler.finished.is_set() and not handler.threads[0].is_alive()
        assert _reply_after_close(server, client) in (b"slow\n", None)


@pytest.mark.parametrize(
    "attrs",
    [{"daemon_threads": True}, {"block_on_close": False}],
    ids=["daemon_threads", "no_block_on_close"],
)
@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_server_close_does_not_wait_for_these_threads(running_server, impl, server_class, attrs):
    handler = blocking_handler(impl, server_class)
    server = running_server(recording(server_class), handler, **attrs)
    with client_for(server) as client:
        send_request(client, server, b"slow\n")
        assert handler.entered.wait(TIMEOUT)
        running_server.stop(server)  # server_close() returns (bounded) with the handler blocked
        assert server.socket.fileno() == -1
        assert not handler.finished.is_set()
        (thread,) = handler.threads
        assert thread.daemon is attrs.get("daemon_threads", False)
        handler.release.set()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert _reply_after_close(server, client) in (b"slow\n", None)


@pytest.mark.parametrize("impl, server_class", servers(*THREADING))
def test_shutdown_from_a_handler_thread(running_server, impl, server_class):
    class Stopper(recording_handler(impl, server_class)):
        def handle(self):
            self.rfile.readline()
            self.server.shutdown()  # fine from a handler thread, never from the loop's own
            self.wfile.write(b"stopped\n")

    server = running_server(server_class, Stopper)
    serving = running_server.thread(server)
    assert exchange(server, b"stop\n") == b"stopped\n"
    serving.join(TIMEOUT)
    assert not serving.is_alive()


def _reap(pids):
    """Wait (bounded) for these children to exit and reap them."""
    left = set(pids)

    def reaped():
        for pid in list(left):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                left.discard(pid)
        return not left

    assert wait_until(reaped), f"children {left} did not exit"


FORKING_STREAM = tuple(n for n in FORKING if n in STREAM)


@pytest.mark.parametrize("impl, server_class", servers(*FORKING_STREAM))
def test_server_close_waits_for_children(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class))
    with stream_client(server) as client:
        # The child now waits in readline() for this client.
        assert wait_until(lambda: server.active_children)
        (pid,) = server.active_children
        running_server.stop_serving(server)
        closer = _start(server.server_close)
        closer.join(STILL_BLOCKED)
        assert closer.is_alive(), "server_close() returned before the child exited"
        client.sendall(b"bye\n")
        closer.join(TIMEOUT)
        assert not closer.is_alive()
        assert recv_until_eof(client) == b"bye\n"
    assert server.active_children == set()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie


@pytest.mark.parametrize("impl, server_class", servers(*FORKING_STREAM))
def test_server_close_without_block_on_close_leaves_children_running(running_server, impl, server_class):
    server = running_server(server_class, recording_handler(impl, server_class), block_on_close=False)
    with stream_client(server) as client:
        assert wait_until(lambda: server.active_children)
        children = set(server.active_children)
        running_server.stop(server)  # server_close() returns (bounded) with the child still busy
        assert server.active_children == children
        client.sendall(b"bye\n")
        assert recv_until_eof(client) == b"bye\n"
    _reap(children)
