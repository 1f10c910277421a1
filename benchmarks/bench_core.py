"""Measure the core servers: the stdlib's socketserver and sockserv, side by side.

Run:  .venv/bin/python benchmarks/bench_core.py  [--quick] [--repeat 9] [--duration 0.2]

Every scenario serves the same echo handlers from the two implementations:

- echo round trips per second on one kept-open TCP connection (a line out,
  the same line back), with TCPServer and ThreadingTCPServer;
- new TCP connections per second: connect, send a line, read the reply,
  close, with TCPServer and ThreadingTCPServer;
- UDP datagram round trips per second, with UDPServer and ThreadingUDPServer;
- shutdown() latency: the time from calling shutdown() on an idle
  serve_forever(poll_interval=0.05) loop until it returns, median and 95th
  percentile of --shutdowns calls per implementation (interleaved too).  The
  call comes at a different point of the loop's wait each time (a fixed
  pseudo-random sequence of offsets within poll_interval, the same for both),
  because the stdlib's loop notices shutdown() only when its wait ends,
  while sockserv's is woken at once.

The server runs in this process (serve_forever in a thread); the client runs
in a separate worker process, started once, so that the two do not share a
GIL and the client costs the same for both implementations.  Each run lasts
--duration seconds and counts completed, verified round trips.  Runs are
interleaved -- stdlib then sockserv, then sockserv then stdlib, and so on --
so that warm-up and background noise do not favour either side, and the
table shows the median of --repeat runs, the spread (min-max) and the ratio
sockserv/stdlib of the medians (1.00 = as fast as the stdlib; above is faster).
For shutdown() latency the ratio is of the latencies, so below 1 is faster.

Everything binds 127.0.0.1 port 0.  This is a benchmark, not a test: it
prints figures and asserts only that every reply was correct.  The whole
script takes about half a minute (--quick: under 10 seconds).
"""

import argparse
import json
import os
import platform
import random
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time

from sockserv.teach.harness import IMPLEMENTATIONS

HOST = "127.0.0.1"
TIMEOUT = 5.0  # bound on any single socket operation
POLL = 0.05  # serve_forever poll interval: quick shutdown between runs
LINE = b"ping 0123456789\n"

#: (label, kind of client loop, server class name, handler kind)
SCENARIOS = [
    ("echo round trips, kept-open TCP", "tcp-kept", "TCPServer", "stream"),
    ("echo round trips, kept-open TCP", "tcp-kept", "ThreadingTCPServer", "stream"),
    ("new TCP connections", "tcp-new", "TCPServer", "stream"),
    ("new TCP connections", "tcp-new", "ThreadingTCPServer", "stream"),
    ("UDP datagram round trips", "udp", "UDPServer", "datagram"),
    ("UDP datagram round trips", "udp", "ThreadingUDPServer", "datagram"),
]


# -- the client worker (a separate process) ---------------------------------------


def _read_line(sock, pending):
    """One line from a stream socket, keeping what follows it in ``pending``."""
    while b"\n" not in pending:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed the connection early")
        pending += chunk
    line, _, rest = pending.partition(b"\n")
    return line + b"\n", rest


def client_tcp_kept(address, duration):
    count = 0
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        deadline = time.perf_counter() + duration
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            sock.sendall(LINE)
            reply, pending = _read_line(sock, pending)
            if reply != LINE:
                raise ValueError(f"wrong reply {reply!r}")
            count += 1
        elapsed = time.perf_counter() - start
    return count, elapsed


def client_tcp_new(address, duration):
    count = 0
    deadline = time.perf_counter() + duration
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            sock.sendall(LINE)
            reply, _ = _read_line(sock, b"")
            if reply != LINE:
                raise ValueError(f"wrong reply {reply!r}")
        count += 1
    return count, time.perf_counter() - start


def client_udp(address, duration):
    count = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind((HOST, 0))
        deadline = time.perf_counter() + duration
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            sock.sendto(LINE, address)
            reply = sock.recv(4096)
            if reply != LINE:
                raise ValueError(f"wrong reply {reply!r}")
            count += 1
        elapsed = time.perf_counter() - start
    return count, elapsed


CLIENTS = {"tcp-kept": client_tcp_kept, "tcp-new": client_tcp_new, "udp": client_udp}


def worker():
    """Read one JSON job per line on stdin, run it, answer one JSON line on stdout."""
    for line in sys.stdin:
        job = json.loads(line)
        count, elapsed = CLIENTS[job["kind"]](tuple(job["address"]), job["duration"])
        print(json.dumps({"count": count, "elapsed": elapsed}), flush=True)


# -- the servers (this process) --------------------------------------------------------


def echo_handlers(impl):
    """The same echo handlers, built on ``impl``'s handler classes."""

    class StreamEcho(impl.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:  # until the client closes
                self.wfile.write(line)

    class DatagramEcho(impl.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read())

    return {"stream": StreamEcho, "datagram": DatagramEcho}


def measure(client, kind, impl, class_name, handler_kind, duration):
    """Serve one run of ``kind`` on ``impl.class_name``; return operations per second."""
    server_class = getattr(impl, class_name)
    with server_class((HOST, 0), echo_handlers(impl)[handler_kind]) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL})
        thread.start()
        try:
            job = {"kind": kind, "address": list(server.server_address), "duration": duration}
            client.stdin.write(json.dumps(job) + "\n")
            client.stdin.flush()
            answer = client.stdout.readline()
            if not answer:
                raise RuntimeError("the client worker died; see its error above")
            result = json.loads(answer)
        finally:
            server.shutdown()
            thread.join(TIMEOUT)
    return result["count"] / result["elapsed"]


def shutdown_latencies(impl, offsets):
    """Seconds each shutdown() took on an idle loop, one call per offset into its wait."""
    started = threading.Event()

    class Idle(impl.TCPServer):
        def service_actions(self):
            started.set()  # the loop has turned once: it is running

    latencies = []
    with Idle((HOST, 0), None) as server:
        for offset in offsets:
            started.clear()
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL})
            thread.start()
            if not started.wait(TIMEOUT):
                raise RuntimeError("serve_forever() did not start")
            time.sleep(offset)
            begin = time.perf_counter()
            server.shutdown()
            latencies.append(time.perf_counter() - begin)
            thread.join(TIMEOUT)
    return latencies


def percentile(values, fraction):
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of 0.1 s each")
    # Many short runs: the median then shrugs off a burst of load from other programs.
    parser.add_argument("--repeat", type=int, default=9, help="runs per implementation (default 9)")
    parser.add_argument("--duration", type=float, default=0.2, help="seconds per run (default 0.2)")
    parser.add_argument("--shutdowns", type=int, default=200,
                        help="shutdown() calls per implementation (default 200)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    if args.quick:
        args.repeat, args.duration, args.shutdowns = 3, 0.1, 40
    if args.repeat < 1 or not 0 < args.duration <= 5 or args.shutdowns < 2:
        parser.error("--repeat must be >= 1, --duration in (0, 5], --shutdowns >= 2")

    print(
        f"sockserv core benchmark: Python {platform.python_version()} "
        f"({platform.python_implementation()}) on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{args.repeat} interleaved runs of {args.duration:g} s per implementation and scenario; "
        "median [min-max] operations per second; client in a separate process"
    )
    print()

    started = time.perf_counter()
    client = subprocess.Popen(
        [sys.executable, __file__, "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rows = []
    try:
        # One short run of each kind first, so that neither side pays for warming up.
        for _, kind, class_name, handler_kind in SCENARIOS[::2]:
            measure(client, kind, socketserver, class_name, handler_kind, min(0.1, args.duration))
        for label, kind, class_name, handler_kind in SCENARIOS:
            rates = {name: [] for name in IMPLEMENTATIONS}
            for rep in range(args.repeat):
                order = list(IMPLEMENTATIONS) if rep % 2 == 0 else list(IMPLEMENTATIONS)[::-1]
                for name in order:
                    rate = measure(client, kind, IMPLEMENTATIONS[name], class_name, handler_kind, args.duration)
                    rates[name].append(rate)
            rows.append((f"{label}, {class_name}", rates))
    finally:
        client.stdin.close()
        client.wait(TIMEOUT)

    def cell(values):
        return f"{statistics.median(values):>8.0f} [{min(values):.0f}-{max(values):.0f}]"

    width = max(len(name) for name, _ in rows)
    print(f"{'scenario':<{width}}  {'stdlib':>22}  {'sockserv':>22}  sockserv/stdlib")
    for name, rates in rows:
        ratio = statistics.median(rates["sockserv"]) / statistics.median(rates["stdlib"])
        print(f"{name:<{width}}  {cell(rates['stdlib']):>22}  {cell(rates['sockserv']):>22}  {ratio:>15.2f}")
    print()

    # shutdown() latency: the same offsets for both, taken in interleaved halves.
    rng = random.Random(6)  # a fixed sequence: every run asks at the same points
    offsets = [rng.uniform(0, POLL) for _ in range(args.shutdowns)]
    latencies = {name: [] for name in IMPLEMENTATIONS}
    half = args.shutdowns // 2
    for part, names in ((offsets[:half], list(IMPLEMENTATIONS)),
                        (offsets[half:], list(IMPLEMENTATIONS)[::-1])):
        for name in names:
            latencies[name] += shutdown_latencies(IMPLEMENTATIONS[name], part)
    print(f"shutdown() latency on an idle loop, poll_interval={POLL:g} s, "
          f"{args.shutdowns} calls each (milliseconds)")
    print(f"{'figure':<8}  {'stdlib':>10}  {'sockserv':>10}  sockserv/stdlib")
    for label, figure in (("median", statistics.median), ("p95", lambda v: percentile(v, 0.95))):
        old, new = figure(latencies["stdlib"]), figure(latencies["sockserv"])
        print(f"{label:<8}  {1000 * old:>10.3f}  {1000 * new:>10.3f}  {new / old:>15.4f}")
    print()
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
