"""Every engine side by side: the Echo and Chat servers on threads (stdlib, sockserv) and asyncio.

Run:  .venv/bin/python benchmarks/bench_engines.py            (about 3 minutes here)
      .venv/bin/python benchmarks/bench_engines.py --small    (a quick look: seconds)

For each engine of sockserv.examples.engines.NAMES, in one run, it prints:

- clients held: chat clients connected at once, added STEP at a time, each step checked by a
  broadcast every client must receive, up to --cap (or until a step fails; it says which);
- memory per client: the chat server's RSS growth per connected client, at --clients and at
  the most held (from /proc/PID/status; the server runs in a child process of its own);
- fan-out: from sending one chat line to its arrival at every client, median and 99th
  percentile over --messages lines at --clients clients, and the median at the most held;
- echo round trips per second: `python -m sockserv echo --impl ENGINE` (threading mode for
  the threaded engines), with 1, 10 and 100 connections each sending 32 bytes and waiting for
  them to come back, for --echo-seconds each.

The chat figures come from benchmarks/bench_chat.py's bench() (the same clients, the same
rules: classroom-safety limits at their defaults); only the engine changes.  The clients all
live in this one process and are read with a selector, so the figures include the time Python
takes to read them here, and both sides share the machine's two cores: note its load (uptime)
with the figures.  `measure()` returns the figures as a dict.  Lesson 10's plots do not come
from here: the lesson measures its own small engines (sockserv.teach.lesson10), selectors
included, which these full servers do not have.

A benchmark, not a test: it asserts nothing.  Linux only (it reads /proc).
"""

import argparse
import os
import platform
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time

import bench_chat

from sockserv.examples import engines

HOST = "127.0.0.1"
PAYLOAD = b"0123456789abcdef0123456789abcdef"
LISTENING = re.compile(r"listening on \S+:(\d+)")
FULL = {"clients": 200, "messages": 50, "cap": 2000, "echo_seconds": 2.0}
SMALL = {"clients": 100, "messages": 20, "cap": 300, "echo_seconds": 0.5}


def echo_round_trips(engine, connections, seconds):
    """Round trips per second through an echo server on engine, with connections clients."""
    child = subprocess.Popen([sys.executable, "-m", "sockserv", "echo", "--port", "0",
                              "--impl", engine], stdout=subprocess.PIPE, text=True)
    socks = []
    try:
        port = int(LISTENING.search(child.stdout.readline()).group(1))
        with selectors.DefaultSelector() as selector:
            for _ in range(connections):
                sock = socket.create_connection((HOST, port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                socks.append(sock)
                selector.register(sock, selectors.EVENT_READ, bytearray())
            trips = 0
            for sock in socks:
                sock.send(PAYLOAD)
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()
            while (now := time.perf_counter()) < deadline:
                for key, _ in selector.select(timeout=deadline - now):
                    got = key.data
                    got += key.fileobj.recv(65536)
                    while len(got) >= len(PAYLOAD):
                        del got[:len(PAYLOAD)]
                        trips += 1
                        key.fileobj.send(PAYLOAD)
            return trips / (time.perf_counter() - started)
    finally:
        for sock in socks:
            sock.close()
        child.send_signal(signal.SIGINT)    # the server's own clean stop
        bench_chat.end_child(child)


def measure(names=engines.NAMES, *, clients=200, messages=50, cap=2000,
            echo_connections=(1, 10, 100), echo_seconds=2.0, report=print):
    """Return {engine: figures} for every engine; report(text) is told as each finishes."""
    results = {}
    for name in names:
        started = time.monotonic()
        figures = bench_chat.bench(name, clients, messages, cap)
        for count in echo_connections:
            figures[f"echo_{count}"] = echo_round_trips(name, count, echo_seconds)
        results[name] = figures
        report(f"  {name}: measured in {time.monotonic() - started:.1f} s; held "
               f"{figures['held']} clients, stopped by {figures['held_why']}")
    return results


def table(results, clients, echo_connections):
    """The figures as text: one row per figure, one column per engine."""
    rows = [("chat clients held at once", "held", 1, "d"),
            (f"memory per client at {clients} clients (KiB)", "rss_per_client", 1, ".1f"),
            ("memory per client at the most held (KiB)", "rss_per_client_at_max", 1, ".1f"),
            (f"fan-out to {clients} clients, median (ms)", "fanout_median", 1000, ".1f"),
            (f"fan-out to {clients} clients, 99th percentile (ms)", "fanout_p99", 1000, ".1f"),
            ("fan-out to the most held, median (ms)", "fanout_at_max", 1000, ".1f")]
    rows += [(f"echo round trips per second, {count} connection(s)", f"echo_{count}", 1, ".0f")
             for count in echo_connections]
    names = list(results)
    lines = [f"{'':52}" + "".join(f"{name:>10}" for name in names)]
    for label, key, scale, form in rows:
        lines.append(f"{label:52}" + "".join(
            f"{results[name][key] * scale:10{form}}" for name in names))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help="a quick look: 100 clients, 20 messages, cap 300, 0.5 s "
                             "echoes (an option given as well wins)")
    parser.add_argument("--clients", type=int, help="clients for fan-out and memory (200)")
    parser.add_argument("--messages", type=int, help="fan-out repetitions (50)")
    parser.add_argument("--cap", type=int, help="most chat clients to try holding (2000)")
    parser.add_argument("--echo-seconds", type=float, help="seconds per echo figure (2)")
    parser.add_argument("--engines", default=",".join(engines.NAMES))
    args = parser.parse_args()
    sizes = SMALL if args.small else FULL
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    print(f"engines benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {load} at the start, {args.clients} clients, {args.messages} "
          f"messages, cap {args.cap}, open files limit {hard}", flush=True)
    echo_connections = (1, 10, 100)
    results = measure(args.engines.split(","), clients=args.clients, messages=args.messages,
                      cap=args.cap, echo_connections=echo_connections,
                      echo_seconds=args.echo_seconds,
                      report=lambda text: print(text, flush=True))
    print()
    print(table(results, args.clients, echo_connections))


if __name__ == "__main__":
    main()
