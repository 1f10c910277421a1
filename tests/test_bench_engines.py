"""benchmarks/bench_engines.py: one run prints every figure for every engine.

Run at a tiny size: the figures are not asserted (a benchmark's numbers
belong in its output, never in a timed test), only that every one of them
is there, for every engine, and that the script and lesson 10 measure with
the same code, as the script's docstring says.
"""

import importlib.util
import json
import pathlib
import sys
import threading

import pytest

import sockserv
from sockserv.teach import lesson10, measure

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_engines",
                                                  ROOT / "benchmarks" / "bench_engines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="memory and load are read from /proc")


@needs_proc
def test_one_run_prints_every_figure_for_every_engine(capsys):
    bench.main(["--clients", "6,9", "--messages", "2", "--cap", "12", "--step", "3",
                "--echo-seconds", "0.05"])
    out = capsys.readouterr().out
    figures, ratios = out.split("\ndivided by stdlib's\n")
    rows = {line[:line.index("  ")]: line.split()[-4:]
            for line in figures.splitlines() if "  " in line and not line.startswith(" ")}
    header = [line for line in figures.splitlines() if line.startswith("      ")]
    assert [line.split() for line in header] == [["stdlib", "sockserv", "asyncio", "selectors"]]
    assert rows["chat clients held at once (cap 12)"] == ["12"] * 4
    for label in ["memory per chat client, 6 clients (KiB)",
                  "memory per chat client, 9 clients (KiB)",
                  "memory per chat client, the most held (KiB)",
                  "fan-out, 9 clients, median (ms)", "fan-out, 9 clients, 99th percentile (ms)",
                  "fan-out, the most held, median (ms)",
                  "fan-out, the most held, 99th percentile (ms)",
                  "echo round trips per second, 1 connection",
                  "echo round trips per second, 10 connections",
                  "echo round trips per second, 100 connections"]:
        assert len(rows[label]) == 4 and "nan" not in rows[label], label
    assert ratios.splitlines()[1].split()[-4:] == ["1.00"] * 4  # held 12 each: same as stdlib
    for engine in bench.ENGINES:
        assert f"  {engine}: measured in " in out
    assert "load average" in out.splitlines()[-1]


@needs_proc
def test_the_ramp_ends_at_the_first_step_a_server_refuses():
    # --max-clients 10: the step from 9 to 12 is refused ("! server full"), so 9 are held,
    # and the step's clients are gone again.
    with bench.served("stdlib", "chat", max_clients=10) as (address, pid):
        figures = measure.chat_figures(address, pid, (6,), messages=1, cap=15, step=3)
    assert figures["held"] == 9
    assert "closed a client's connection" in figures["held_why"]
    assert len(figures["fanout_at_most"]) == 5


def late_echo(delay, done):
    """A handler that waits delay seconds (or until done is set, then ends) before it echoes."""
    class LateEcho(sockserv.BaseRequestHandler):
        def handle(self):
            if done.wait(delay):
                return
            try:
                while data := self.request.recv(65536):
                    self.request.sendall(data)
            except ConnectionResetError:
                pass        # the measuring client closed with an echo unread

    return LateEcho


def test_an_echo_later_than_the_measuring_time_still_gives_a_rate(running_server):
    # A busy machine can leave a threaded server's new thread unstarted for longer than a
    # short measuring time; that is a slow first echo, not a rate of 0.
    server = running_server(sockserv.TCPServer, late_echo(0.2, threading.Event()))
    assert measure.echo_rate(server.server_address, 1, seconds=0.05) > 0


def test_a_server_that_never_echoes_is_a_timeout_not_a_hang(running_server, monkeypatch):
    monkeypatch.setattr(measure, "FIRST_ECHO_TIMEOUT", 0.2)
    done = threading.Event()
    server = running_server(sockserv.TCPServer, late_echo(30, done))
    try:
        with pytest.raises(TimeoutError, match="no echo came back within 0.2 s"):
            measure.echo_rate(server.server_address, 1, seconds=0.05)
    finally:
        done.set()          # the handler ends, so the server can be stopped


def test_small_is_lesson_10s_sizes_and_help_says_so(capsys):
    assert {key: bench.SMALL[key] for key in lesson10.SIZES} == lesson10.SIZES
    assert bench.SMALL["cap"] == max(lesson10.SIZES["chat_clients"])
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert "lesson 10's sizes" in capsys.readouterr().out


def test_unknown_engines_and_bad_counts_are_refused(capsys):
    for argv in (["--engines", "stdlib,threads"], ["--clients", "100,50"]):
        with pytest.raises(SystemExit):
            bench.main(argv)
    assert "threads" in capsys.readouterr().err


def test_lesson_10_and_the_benchmark_measure_with_the_same_code():
    # What the script's docstring claims, kept true: both call measure.side_by_side().
    notebook = json.loads((ROOT / "notebooks" / "10-beyond-threads.ipynb").read_text("utf-8"))
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert "measure.side_by_side(ENGINES, lesson10.served, **lesson10.SIZES)" in code
    assert "measure.side_by_side(" in pathlib.Path(bench.__file__).read_text("utf-8")
    assert "lesson 10's plots come from" in bench.__doc__.replace("\n", " ")

