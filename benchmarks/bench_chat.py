"""Measure the chat server: fan-out time, clients held at once, memory per client.

Run:  .venv/bin/python benchmarks/bench_chat.py  [--clients 200] [--messages 50] [--cap 1000]

For each implementation (the stdlib's socketserver, then sockserv; --impls may add asyncio,
and benchmarks/bench_engines.py compares every engine) the script starts the chat
server in a child process (so that its memory is the server's alone; read from
/proc/PID/status), connects the clients from this process, and prints:

- fan-out: the time from sending one chat line to the moment all clients (the sender
  included) have received it, repeated --messages times: the median and the 99th percentile.
  The clients are read by this one process with a selector, so the figure includes the time
  Python takes to read 200 sockets here, not only the server's work.
- memory per client: (server RSS with --clients connected - RSS with none) / --clients.
- memory under a flood: the server's largest RSS growth while one client sends a single
  64 MiB line (it is told "! line too long" and disconnected after max-line bytes).
- the input steps' cost: microseconds for one ordinary line through chat_input.ChatInput
  (telnet filter, framing, decoding, cleaning, parsing, flood limit), next to decoding and
  parsing alone, measured in this process before the servers are started.
- clients held: clients are added 100 at a time, each step checked by a broadcast that every
  client must receive, until something fails or --cap is reached; the figure says which.

The server runs with the classroom-safety rules on, at their defaults (control characters
removed, telnet filtered, --rate 10 --burst 30 per client), except --max-clients, raised above
--cap so that the ramp can reach it.  So that no client exceeds its flood limit, each broadcast
is sent by the next client in turn (with 200 clients, none sends more than once in the run);
the figures therefore include what the safety rules cost per line.

This is a benchmark, not a test: it asserts nothing and prints figures.  It needs Linux (it
reads /proc) and takes about a minute.
"""

import argparse
import os
import platform
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
STEP = 100              # clients added per step of the ramp
WAIT = 20.0             # seconds any one wait may take before the step counts as failed


class Failed(Exception):
    """A step of the benchmark could not complete; the message says why."""


class Clients:
    """Many chat clients in one process, read together with a selector."""

    def __init__(self, port):
        self.port = port
        self.socks = []
        self.buffers = {}
        self.selector = selectors.DefaultSelector()
        self.settled = 0
        self.sent = 0           # broadcasts so far: the next one's sender is sent % clients

    def connect(self, count):
        """Connect count more clients and wait until each has been welcomed."""
        new = []
        for _ in range(count):
            try:
                sock = socket.create_connection((HOST, self.port), timeout=WAIT)
            except OSError as exc:
                raise Failed(f"connect failed: {exc}") from None
            sock.setblocking(False)
            self.socks.append(sock)
            self.buffers[sock] = bytearray()
            self.selector.register(sock, selectors.EVENT_READ)
            new.append(sock)
        # Welcomed means registered: from now on every broadcast reaches it.
        self.read_until(lambda sock, line: line.startswith(b"* welcome "), new)

    def read_until(self, finished, socks=None):
        """Read from every client until finished(sock, line) has been true once for each
        sock in socks (default: all); other lines are discarded."""
        waiting = set(self.socks if socks is None else socks)
        deadline = time.monotonic() + WAIT
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{len(waiting)} client(s) did not receive the line in {WAIT} s")
            for key, _ in self.selector.select(timeout=left):
                sock = key.fileobj
                try:
                    data = sock.recv(1 << 16)
                except OSError as exc:
                    raise Failed(f"a client's connection failed: {exc}") from None
                if not data:
                    raise Failed("the server closed a client's connection")
                buffer = self.buffers[sock]
                buffer += data
                *lines, rest = buffer.split(b"\n")
                buffer[:] = rest
                if sock in waiting and any(finished(sock, line) for line in lines):
                    waiting.discard(sock)

    def settle(self):
        """Wait until every client has read everything the server sent it so far."""
        # Each client's lines arrive in order: once all have a fresh broadcast, every notice
        # queued before it has been read too.
        self.settled += 1
        self.broadcast(f"settled {self.settled}".encode())

    def broadcast(self, text):
        """Send text from the next client in turn (each stays far below its flood limit);
        return seconds until all clients received it."""
        wanted = b": " + text
        sender = self.socks[-1 - self.sent % len(self.socks)]
        self.sent += 1
        start = time.perf_counter()
        sender.sendall(text + b"\n")
        self.read_until(lambda sock, line: line.endswith(wanted))
        return time.perf_counter() - start

    def close(self):
        self.selector.close()
        for sock in self.socks:
            sock.close()
        self.socks.clear()


def proc_status(pid, field):
    """A number from /proc/PID/status: "VmRSS" (in KiB), "Threads"."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def wait_threads(pid, count):
    """Wait (up to WAIT seconds) until process pid runs at most count threads."""
    deadline = time.monotonic() + WAIT
    while proc_status(pid, "Threads") > count and time.monotonic() < deadline:
        time.sleep(0.05)


def flood(port, pid, megabytes=64):
    """Send one line of megabytes MiB, no newline; return the server's largest RSS growth
    (KiB) seen while it was being sent."""
    before = peak = proc_status(pid, "VmRSS")
    chunk = b"x" * (1 << 20)
    with socket.create_connection((HOST, port), timeout=WAIT) as sock:
        finished = threading.Event()

        def send():
            try:
                for _ in range(megabytes):
                    sock.sendall(chunk)
            except OSError:
                pass    # the server has had enough: "! line too long", then it closed
            finally:
                finished.set()

        sender = threading.Thread(target=send, name="flood")
        sender.start()
        while not finished.wait(0.005):
            peak = max(peak, proc_status(pid, "VmRSS"))
        sender.join()
    return peak - before


def serve(impl_name, max_clients):
    """Child process: run a chat server, print its port, stop when stdin closes."""
    from sockserv.examples import engines

    server = engines.chat_server(impl_name, (HOST, 0), max_clients=max_clients)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="chat serve")
    thread.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.stop()
    thread.join()


def bench(impl_name, clients_wanted, messages, cap):
    """Run every measurement against one implementation; return the figures as a dict."""
    # Room for the ramp's last step and the flood client above the cap.
    child = subprocess.Popen([sys.executable, __file__, "--serve", impl_name,
                              "--cap", str(cap + STEP + 10)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    figures = {}
    clients = None
    try:
        port = int(child.stdout.readline())
        idle_threads = proc_status(child.pid, "Threads")
        # Warm up (first connections import and allocate lazily), then the baseline.
        clients = Clients(port)
        clients.connect(20)
        clients.settle()
        clients.close()
        wait_threads(child.pid, idle_threads)
        clients = Clients(port)
        before = proc_status(child.pid, "VmRSS")
        clients.connect(clients_wanted)
        clients.settle()
        figures["rss_per_client"] = (proc_status(child.pid, "VmRSS") - before) / clients_wanted

        samples = [clients.broadcast(f"message {number}".encode())
                   for number in range(messages)]
        figures["fanout_median"] = statistics.median(samples)
        figures["fanout_p99"] = statistics.quantiles(samples, n=100, method="inclusive")[98]

        figures["flood_rss"] = flood(port, child.pid)

        held, why = clients_wanted, f"the cap of {cap}"
        ramp_started = time.monotonic()
        while held < cap:
            try:
                clients.connect(min(STEP, cap - held))
                clients.settle()
            except Failed as exc:
                why = str(exc)
                break
            held = len(clients.socks)
        figures["held"] = held
        figures["ramp_seconds"] = time.monotonic() - ramp_started
        figures["held_why"] = why
        # One message to every client held: the scale figure ("to all of them within 2 s").
        try:
            samples = [clients.broadcast(f"to all {number}".encode()) for number in range(5)]
            figures["fanout_at_max"] = statistics.median(samples)
        except Failed:
            figures["fanout_at_max"] = float("nan")     # the server no longer serves them all
        figures["rss_per_client_at_max"] = (proc_status(child.pid, "VmRSS") - before) / held
    finally:
        if clients is not None:
            clients.close()
        child.stdin.close()
        end_child(child)
    return figures


def end_child(child, timeout=10):
    """Wait for a server child that has been told to stop; kill it after timeout seconds."""
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def pipeline_cost(lines=20_000):
    """Microseconds per line of the safety steps, in this process: a typical chat line through
    ChatInput.feed() (telnet filter, framing, decoding, cleaning, parsing, flood limit), and
    through decoding and parsing alone (what the server did before the safety rules)."""
    import timeit

    from sockserv.examples.chat_input import ChatInput
    from sockserv.examples.chat_protocol import decode_line, parse

    line = "hello everyone, is the exercise due on Friday? caf\u00e9\r\n".encode()
    chunk = line * 100
    incoming = ChatInput(rate=0)
    full = min(timeit.repeat(lambda: incoming.feed(chunk), number=lines // 100, repeat=5))

    def bare():
        for raw in chunk.split(b"\n")[:-1]:
            parse(decode_line(raw))
    plain = min(timeit.repeat(bare, number=lines // 100, repeat=5))
    return full / lines * 1e6, plain / lines * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="clients for fan-out and memory")
    parser.add_argument("--messages", type=int, default=50, help="fan-out repetitions")
    parser.add_argument("--cap", type=int, default=1000, help="most clients to try holding")
    parser.add_argument("--impls", default="stdlib,sockserv",
                        help="implementations to measure, in this order (the side-by-side "
                             "table needs both; the first measured has been seen to run slower "
                             "on a busy machine: swap them to check)")
    parser.add_argument("--serve", choices=["stdlib", "sockserv", "asyncio"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.cap)
        return

    # Each client costs a descriptor here and one in the server: allow as many as we may.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"chat benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{args.clients} clients, {args.messages} messages, cap {args.cap}, "
          f"open files limit {hard} (soft was {soft})")
    with_rules, without = pipeline_cost()
    print(f"  one line through the input steps: {with_rules:.2f} us with the safety rules, "
          f"{without:.2f} us decoding and parsing alone")
    results = {}
    for impl_name in args.impls.split(","):
        started = time.monotonic()
        figures = results[impl_name] = bench(impl_name, args.clients, args.messages, args.cap)
        print(f"  {impl_name}: measured in {time.monotonic() - started:.1f} s; held "
              f"{figures['held']} clients (ramp {figures['ramp_seconds']:.1f} s), stopped by "
              f"{figures['held_why']}", flush=True)

    rows = [
        (f"fan-out to {args.clients} clients, median (ms)", "fanout_median", 1000),
        (f"fan-out to {args.clients} clients, 99th percentile (ms)", "fanout_p99", 1000),
        (f"server memory per client at {args.clients} clients (KiB)", "rss_per_client", 1),
        ("server memory per client at the most held (KiB)", "rss_per_client_at_max", 1),
        ("clients held at once", "held", 1),
        ("server RSS growth while a client sends a 64 MiB line (KiB)", "flood_rss", 1),
    ]
    names = list(results)
    header = "".join(f"{name:>10}" for name in names)
    both = {"stdlib", "sockserv"} <= set(names)
    print(f"\n{'':60}{header}{'  sockserv/stdlib' if both else ''}")
    for label, key, scale in rows:
        values = [results[name][key] * scale for name in names]
        line = f"{label:60}" + "".join(f"{value:10d}" if isinstance(value, int)
                                       else f"{value:10.1f}" for value in values)
        if both:
            a, b = results["stdlib"][key], results["sockserv"][key]
            line += f"{b / a:16.2f}" if a else f"{'-':>16}"
        print(line)


if __name__ == "__main__":
    main()
