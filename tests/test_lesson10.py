"""Lesson 10's engines, measurements and exercise checks.

The checks pass the worked solutions and fail each plausible wrong answer
with one sentence that names what is wrong, within a bound.  The engines
are run on both services; the measuring code (sockserv.teach.measure, which
the notebook and benchmarks/bench_engines.py share) is run at a tiny size
(its figures are not asserted: performance belongs in the notebook and the
benchmarks, never in a timed test).
"""

import asyncio
import inspect
import math
import socket
import sys

import pytest

from sockserv.teach import harness, lesson10, measure

from lesson_checks import fails_with, passes, short_bounds_for


short_bounds = short_bounds_for(lesson10, client=1.5, stop=2.0)


# -- the engines -------------------------------------------------------------------


@pytest.mark.parametrize("engine", lesson10.ENGINES)
def test_echo_engines_echo_every_byte_and_close_after_eof(engine):
    server = lesson10.make_server(engine, "echo")
    with harness.serving(server, stop_timeout=harness.STOP_TIMEOUT):
        big = bytes(range(256)) * 2000  # larger than any socket buffer: partial sends
        assert harness.talk(server.server_address, b"hello ", big) == b"hello " + big
        assert harness.talk(server.server_address) == b""


@pytest.mark.parametrize("engine", lesson10.ENGINES)
def test_chat_engines_send_a_line_to_the_others_only(engine):
    server = lesson10.make_server(engine, "chat")
    with harness.serving(server, stop_timeout=harness.STOP_TIMEOUT):
        address = server.server_address
        with harness.connect(address) as one, harness.connect(address) as two:
            # Until both are registered a line may reach nobody: send probes till one lands.
            for attempt in range(50):
                one.sendall(b"probe %d\n" % attempt)
                two.settimeout(0.1)
                try:
                    assert harness.read_line(two).startswith(b"probe")
                    break
                except TimeoutError:
                    continue
            two.settimeout(harness.CLIENT_TIMEOUT)
            one.sendall(b"part")
            one.sendall(b"ial line\n")
            while (line := harness.read_line(two)).startswith(b"probe"):
                pass
            assert line == b"partial line\n"
            one.settimeout(0.2)
            with pytest.raises(TimeoutError):
                one.recv(1)  # the speaker does not get its own line back


@pytest.mark.parametrize("engine", ["selectors", "asyncio"])
def test_a_too_long_chat_line_drops_only_its_sender(engine):
    server = lesson10.make_server(engine, "chat")
    with harness.serving(server, stop_timeout=harness.STOP_TIMEOUT):
        address = server.server_address
        with harness.connect(address) as bad, harness.connect(address) as good:
            bad.sendall(b"x" * (lesson10.MAX_LINE + 10) + b"\n")
            assert harness.read_all(bad) == b""  # closed by the server
            assert harness.talk(address, b"still serving\n") == b""


@pytest.mark.parametrize("service", lesson10.SERVICES)
def test_asyncio_shutdown_ends_even_with_a_client_that_never_reads(service):
    server = lesson10.make_server("asyncio", service)
    server.grace = 0.2
    server.send_buffer = 4096
    with harness.connect(server.server_address) as idle:
        idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with harness.serving(server, stop_timeout=harness.STOP_TIMEOUT):
            if service == "echo":  # a backlog the client never reads, then the stop
                idle.sendall(b"x" * 200_000)
        assert not server.writers


needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="memory is read from /proc/PID/status")


@needs_proc
def test_the_lessons_measuring_gives_every_figure_for_every_engine():
    # The notebook's own call, at a tiny size, on a threaded engine and an event loop.
    results = measure.side_by_side(["sockserv", "selectors"], lesson10.served,
                                   echo_connections=(1, 3), echo_seconds=0.05,
                                   chat_clients=(6, 9), messages=2, cap=15, step=3)
    assert list(results) == ["sockserv", "selectors"]
    for figures in results.values():
        assert sorted(figures["echo"]) == [1, 3]
        assert all(rate > 0 for rate in figures["echo"].values())
        assert sorted(figures["memory"]) == [6, 9]  # RSS may even shrink a little: no sign
        assert [len(times) for times in figures["fanout"].values()] == [2, 2]
        assert all(time >= 0 for times in figures["fanout"].values() for time in times)
        assert (figures["held"], figures["held_why"]) == (15, "the cap of 15")
        assert len(figures["fanout_at_most"]) == 5 and figures["memory_at_most"] is not None
    lines = measure.table(results).splitlines()
    assert lines[0].split() == ["sockserv", "selectors"]
    assert [line[:line.index("  ")] for line in lines[1:]] == [
        "chat clients held at once (cap 15)",
        "memory per chat client, 6 clients (KiB)", "memory per chat client, 9 clients (KiB)",
        "memory per chat client, the most held (KiB)",
        "fan-out, 6 clients, median (ms)", "fan-out, 6 clients, 99th percentile (ms)",
        "fan-out, 9 clients, median (ms)", "fan-out, 9 clients, 99th percentile (ms)",
        "fan-out, the most held, median (ms)", "fan-out, the most held, 99th percentile (ms)",
        "echo round trips per second, 1 connection",
        "echo round trips per second, 3 connections"]
    ratios = measure.table(results, relative_to="sockserv").splitlines()
    assert all(line.split()[-2] == "1.00" for line in ratios[1:])  # sockserv's own column
    assert "(KiB)" not in ratios[2]  # a ratio has no unit


@needs_proc
def test_without_a_cap_there_is_no_ramp_and_no_held_row():
    with lesson10.served("asyncio", "chat") as (address, pid):
        figures = measure.chat_figures(address, pid, (6,), messages=1)
    assert (figures["held"], figures["held_why"], figures["cap"]) == (6, "no ramp", None)
    figures["echo"] = {}
    assert "held" not in measure.table({"asyncio": figures})


def test_a_broadcast_needs_listeners():
    with measure.Clients(("127.0.0.1", 9)) as clients:
        with pytest.raises(ValueError, match="listeners"):
            clients.broadcast()


def test_percentile_interpolates_between_the_nearest_two():
    values = list(range(1, 101))
    assert measure.percentile(values, 0.99) == pytest.approx(99.01)
    assert measure.percentile(values, 0.5) == 50.5
    assert measure.summary([3, 1, 2]) == (2, pytest.approx(2.98))
    assert measure.summary([7]) == (7, 7)
    assert all(math.isnan(value) for value in measure.summary([]))


def test_the_lesson_sizes_are_measure_keywords():
    assert set(lesson10.SIZES) <= set(inspect.signature(measure.side_by_side).parameters)


def test_usage_error_is_one_line():
    with pytest.raises(SystemExit) as caught:
        lesson10.main(["serve", "nothing", "echo"])
    assert "usage:" in str(caught.value)


# -- exercise 1: flush --------------------------------------------------------------


def solution_flush(sock, outbox):
    sent = sock.send(outbox)
    del outbox[:sent]


def flush_clears(sock, outbox):
    sock.send(outbox)
    outbox.clear()


def flush_sendall(sock, outbox):
    sock.sendall(outbox)
    outbox.clear()


def flush_loops(sock, outbox):
    while outbox:
        sent = sock.send(outbox)
        del outbox[:sent]


def flush_rebinds(sock, outbox):
    sent = sock.send(outbox)
    outbox = outbox[sent:]  # a new bytearray; the caller's keeps every byte


def flush_blocks(sock, outbox):
    sock.setblocking(True)
    sock.sendall(outbox)
    outbox.clear()


def flush_placeholder(sock, outbox):
    ...


def test_flush_solution_passes(capsys):
    out = passes(lesson10.check_flush, solution_flush, capsys=capsys)
    assert str(lesson10.FLUSH_BYTES) in out


def test_the_engines_own_flush_passes(capsys):
    passes(lesson10.check_flush, lesson10.send_some, capsys=capsys)


@pytest.mark.parametrize("wrong, words", [
    (flush_clears, "should add up to"),
    (flush_sendall, "raised BlockingIOError"),
    (flush_loops, "raised BlockingIOError"),
    (flush_rebinds, "should add up to"),
    (flush_placeholder, "fill in the ... in flush_placeholder first."),
])
def test_flush_wrong_answers_fail(wrong, words):
    fails_with(lesson10.check_flush, wrong, words=words)


def test_flush_that_waits_fails_in_time(short_bounds):
    fails_with(lesson10.check_flush, flush_blocks, words="did not return within 1.5 s")


# -- exercise 2: broadcast ------------------------------------------------------------


async def solution_broadcast(clients, line):
    for writer in list(clients):
        if writer.transport.get_write_buffer_size() > lesson10.OUTBOX_LIMIT:
            writer.transport.abort()
        else:
            writer.write(line)


async def broadcast_unbounded(clients, line):
    for writer in list(clients):
        writer.write(line)


async def broadcast_waits_a_little(clients, line):
    for writer in list(clients):
        writer.write(line)
        try:
            await asyncio.wait_for(writer.drain(), 0.1)  # gives up on it, but only for now
        except asyncio.TimeoutError:
            pass


def broadcast_not_async(clients, line):
    for writer in list(clients):
        writer.write(line)


async def broadcast_placeholder(clients, line):
    ...


def test_broadcast_solution_passes(capsys):
    passes(lesson10.check_broadcast, solution_broadcast, capsys=capsys)


@pytest.mark.parametrize("wrong, words", [
    (broadcast_unbounded, "grew without a bound"),
    (broadcast_not_async, "must be an async def"),
    (broadcast_placeholder, "fill in the ... in broadcast_placeholder first."),
])
def test_broadcast_wrong_answers_fail(wrong, words):
    fails_with(lesson10.check_broadcast, wrong, words=words)


@pytest.mark.parametrize("wrong", [lesson10.stalling_broadcast, broadcast_waits_a_little])
def test_a_broadcast_that_waits_for_the_slow_client_fails(wrong, short_bounds):
    fails_with(lesson10.check_broadcast, wrong, words="stalled the broadcast")
