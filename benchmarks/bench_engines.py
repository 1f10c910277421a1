"""Every engine side by side: the course's Echo and Chat servers on threads and on asyncio.

Run:  .venv/bin/python benchmarks/bench_engines.py            (about 5 minutes here)
      .venv/bin/python benchmarks/bench_engines.py --small    (lesson 10's sizes: about a minute)

The engines are the `python -m sockserv echo|chat --impl ENGINE` servers, stdlib and sockserv
(a thread per client) and asyncio, each run as that command in a child process of its own,
with the chat's classroom-safety rules at their defaults (only --max-clients is raised, above
the cap); and, for comparison, lesson 10's small selectors engine (`python -m
sockserv.teach.lesson10 serve selectors echo|chat`), which has none of those rules.  For every
engine, in one run, it prints:

- clients held: chat clients connected at once, added --step at a time after the last of
  --clients, each step checked by a line every client must receive, up to --cap (or until a
  step fails: it says which);
- memory per chat client: the chat server's RSS growth per idle client, at each of --clients
  and at the most held (from /proc/PID/status);
- fan-out: from a client sending one chat line to its arrival at every listener, median and
  99th percentile over --messages lines at each of --clients, and over 5 at the most held;
- echo round trips per second with 1, 10 and 100 connections, each with one 64-byte message in
  flight, for --echo-seconds each;

then the same figures divided by the stdlib's.  The measuring is
sockserv.teach.measure.side_by_side(), the code that lesson 10's plots come from: the lesson
calls it on its own four small engines at lesson10.SIZES (100 and 1000 clients, 10 lines, 0.2 s
echoes, no ramp), and --small measures these engines at those same sizes, with a cap of 1000.
The clients all live in this one process and are read with a selector, so the figures include
the time Python takes to read them here, and both sides share the machine's cores: the load
average is printed at the start and at the end.

A benchmark, not a test: it asserts nothing.  Linux only (it reads /proc).
"""

import argparse
import os
import platform
import signal
import sys

from sockserv.examples import engines
from sockserv.teach import lesson10, measure

#: The columns, in order: the --impl engines, then lesson 10's selectors engine.
ENGINES = (*engines.NAMES, "selectors")
FULL = {"echo_connections": (1, 10, 100), "echo_seconds": 2.0, "chat_clients": (100, 1000),
        "messages": 50, "cap": 2000, "step": measure.STEP}
SMALL = {**lesson10.SIZES, "cap": max(lesson10.SIZES["chat_clients"]), "step": measure.STEP}


def served(engine, service, max_clients):
    """engine's service server in a child process (measure.served()): yields (address, pid)."""
    if engine == "selectors":
        return lesson10.served("selectors", service)
    argv = [sys.executable, "-m", "sockserv", service, "--port", "0", "--impl", engine]
    if service == "chat":
        argv += ["--max-clients", str(max_clients), "--no-console"]
    return measure.served(argv, stop_signal=signal.SIGINT)  # the command's own clean stop


def counts(text):
    """--clients: increasing client counts, comma-separated."""
    values = [int(value) for value in text.split(",")]
    if values != sorted(set(values)) or values[0] <= measure.SPEAKERS:
        raise argparse.ArgumentTypeError(f"increasing counts above {measure.SPEAKERS}, "
                                         f"such as 100,1000")
    return tuple(values)


def load_average():
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help="lesson 10's sizes (lesson10.SIZES): 100 and 1000 clients, 10 "
                             "lines, 0.2 s echoes, cap 1000 (an option given as well wins)")
    parser.add_argument("--clients", type=counts,
                        help="client counts for memory and fan-out (100,1000)")
    parser.add_argument("--messages", type=int, help="fan-out lines at each count (50)")
    parser.add_argument("--cap", type=int, help="most chat clients to try holding (2000)")
    parser.add_argument("--step", type=int, help="clients added per step of the ramp (100)")
    parser.add_argument("--echo-seconds", type=float, help="seconds per echo figure (2)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"engines, in this order ({','.join(ENGINES)})")
    args = parser.parse_args(argv)
    sizes = dict(SMALL if args.small else FULL)
    for option, key in [("clients", "chat_clients"), ("messages", "messages"), ("cap", "cap"),
                        ("step", "step"), ("echo_seconds", "echo_seconds")]:
        if getattr(args, option) is not None:
            sizes[key] = getattr(args, option)
    names = args.engines.split(",")
    unknown = set(names) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}: choose from "
                     f"{', '.join(ENGINES)}")
    cap = max(sizes["cap"], *sizes["chat_clients"])
    limit = measure.raise_open_files_limit(2 * cap + 100)    # the server child inherits it
    print(f"engines benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {load_average()} at the start; chat at "
          f"{', '.join(map(str, sizes['chat_clients']))} clients, {sizes['messages']} lines "
          f"each, cap {cap}; echo {sizes['echo_seconds']:g} s each; open files limit {limit}",
          flush=True)

    def report(engine, figures):
        print(f"  {engine}: measured in {figures['seconds']:.1f} s; held {figures['held']} "
              f"clients, stopped by {figures['held_why']}", flush=True)

    results = measure.side_by_side(
        names, lambda engine, service: served(engine, service, cap + 10), report=report,
        **sizes)
    print()
    print(measure.table(results))
    if "stdlib" in results:
        print("\ndivided by stdlib's")
        print(measure.table(results, relative_to="stdlib"))
    if "selectors" in results:
        print("\nselectors is lesson 10's small engine: no classroom-safety rules, no welcome "
              "or notices; the others are python -m sockserv ... --impl ENGINE.")
    print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
