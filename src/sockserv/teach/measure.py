"""Engines measured side by side: one code for lesson 10's plots and for the benchmark.

Lesson 10 measures its four small engines (``sockserv.teach.lesson10``) at a
small size; ``benchmarks/bench_engines.py`` measures the course's full servers
(``python -m sockserv echo|chat --impl ...``) at a larger one.  Both call
``side_by_side()`` here, so a figure means the same thing in both:

* **echo round trips per second** (``echo_rate()``): N connections, each
  with one message in flight, for a few tenths of a second or seconds;
* **memory per chat client**: the chat server's resident memory (``VmRSS``
  in ``/proc/PID/status``, Linux only) once the clients are in the chat,
  less what it was with only the ``SPEAKERS`` in it, divided by the
  clients added; they are idle meanwhile, so this is memory per idle client;
* **fan-out**: from a speaker sending a chat line to the moment every
  listener has it (``Clients.broadcast()``), median and 99th percentile
  over the lines sent;
* **clients held**: clients added ``step`` at a time up to a cap, each step
  checked by a line that every client must receive; the first step that
  fails ends the ramp, and the figure says why.

Each server runs in a child process of its own (``served()``): its memory is
its own, and it shares no interpreter lock with the clients.  The clients
all live in the calling process and are read by one selectors loop, so
their own cost (Python reading hundreds of sockets) is in every figure,
the same for every engine.

The clients ask little of a chat server, so they measure the lesson's chat
(a line goes, as it is, to every other client) and the course's (``NAME:
line`` to everyone, welcome and join notices, classroom-safety rules on)
alike: a client is *in* the chat once a line sent by another client has
reached it; a line has *arrived* when a received line ends with it.  The
first ``SPEAKERS`` clients send every line, in turn, so that none comes
near a flood limit; the others only listen.  Why: a client that has sent
data recently gets its acknowledgements delayed by its kernel (Linux's
delayed ACK, up to 40 ms), and a server's next short line to it waits for
that acknowledgement (Nagle's algorithm).  Measured with every client
speaking in turn, lines took 40 ms now and then, which is that timer, not
the engine; listeners that never send are acknowledged at once.  For the
same reason the clients turn Nagle's algorithm off on their own sockets
(``TCP_NODELAY``).

Functions for the caller: ``side_by_side()``, ``table()``; its parts
``served()``, ``echo_rate()``, ``chat_figures()``, ``Clients``,
``summary()``; and ``raise_open_files_limit()``, ``rss_bytes()``.
"""

import contextlib
import math
import re
import selectors
import socket
import subprocess
import time

from . import harness

__all__ = ["WAIT", "STEP", "SPEAKERS", "Failed", "raise_open_files_limit", "served",
           "rss_bytes", "echo_rate", "Clients", "chat_figures", "side_by_side",
           "percentile", "summary", "table"]

#: Seconds any one wait of a measurement may take before it counts as failed.
WAIT = 20.0

#: Clients the ramp adds per step, by default.
STEP = 100

#: The clients that send the chat lines, in turn; they join first, and the
#: server's memory is first read with them in (the first connections also
#: pay for what a server allocates lazily, which is no one client's).
SPEAKERS = 4

#: Seconds from the first probe line of Clients.settle() to the second; each
#: wait after is twice the one before, up to a second.  A server may take a
#: while to register a client it has accepted, but no probe is wasted on
#: one that does not need it.
FIRST_PROBE_WAIT = 0.02

#: The line a server child prints first (the command line's, and lesson 10's).
LISTENING = re.compile(r"listening on (\S+):(\d+)")


class Failed(Exception):
    """A step of a measurement did not complete; the message says why."""


def raise_open_files_limit(wanted):
    """Raise this process's soft RLIMIT_NOFILE to wanted (at most the hard limit); return it.

    Every client costs a descriptor here and one in the server, whose child
    process inherits the limit.  POSIX only: Windows has no resource module.
    """
    import resource  # here, so that the lessons import on Windows
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@contextlib.contextmanager
def served(argv, *, stop_signal=None, timeout=10.0):
    """Run the server command argv in a child process; yield ((host, port), pid).

    The child's first line of output says ``listening on HOST:PORT``.  On
    leaving the block the child is sent stop_signal if one is given (the
    command line stops on SIGINT), its stdin is closed (lesson 10's child
    stops on that), and it is waited for, and killed only if it has not
    exited within timeout seconds.
    """
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = harness.run_bounded(child.stdout.readline, timeout=timeout,
                                   what=f"starting {' '.join(argv[1:])}")
        found = LISTENING.search(line)
        if found is None:
            raise RuntimeError(f"the server said {line.strip()!r}, not where it listens")
        yield (found.group(1), int(found.group(2))), child.pid
    finally:
        if stop_signal is not None and child.poll() is None:
            child.send_signal(stop_signal)
        child.stdin.close()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def rss_bytes(pid):
    """Resident memory of process pid in bytes (VmRSS of /proc/PID/status; Linux only)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


def _connect(address, count):
    # count more connected, non-blocking sockets; none left open if one fails.  No Nagle:
    # a client's short line must not wait for the server's delayed ACK of its last one.
    socks = []
    try:
        for _ in range(count):
            socks.append(harness.connect(address, timeout=WAIT))
            socks[-1].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks[-1].setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


#: Seconds echo_rate() waits, past its measuring time, for a first round trip.
FIRST_ECHO_TIMEOUT = 10.0


def echo_rate(address, connections, seconds=0.3, size=64):
    """Echo round trips per second over connections clients, each one message in flight.

    Each client sends size bytes, waits until all of them are back, sends
    again.  One selectors loop drives them all from this thread, so the
    figure includes this client's own cost, the same for every engine.
    It measures for ``seconds``, and longer if no round trip has finished by
    then (a busy machine may not have run the server's new thread yet): a
    rate is never 0 for a server that echoes.  TimeoutError if none finishes
    within FIRST_ECHO_TIMEOUT more seconds.
    """
    message = b"e" * size
    socks = _connect(address, connections)
    trips = 0
    try:
        with selectors.DefaultSelector() as selector:
            waiting = {}
            for sock in socks:
                selector.register(sock, selectors.EVENT_READ)
                sock.send(message)  # a few bytes always fit in an empty send buffer
                waiting[sock] = size
            start = time.monotonic()
            stop_at = start + seconds
            give_up_at = stop_at + FIRST_ECHO_TIMEOUT
            while (now := time.monotonic()) < stop_at or not trips:
                if now >= give_up_at:
                    raise TimeoutError(f"no echo came back within {give_up_at - start:.1f} s")
                for key, _ in selector.select((stop_at if trips else give_up_at) - now):
                    sock = key.fileobj
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("the echo server closed a connection")
                    waiting[sock] -= len(data)
                    if waiting[sock] == 0:
                        trips += 1
                        sock.send(message)
                        waiting[sock] = size
            elapsed = time.monotonic() - start
    finally:
        for sock in socks:
            sock.close()
    return trips / elapsed


class Clients:
    """Chat clients in this process, all read by one selector; a context manager.

    add(count) connects count more and waits until every client is in the
    chat and has read all that was sent to it; broadcast() sends a line from
    the next speaker (the first SPEAKERS clients) and returns the seconds
    until every listener (the others) had it.  socks is every client, in
    the order they joined.
    """

    def __init__(self, address):
        self.address = address
        self.socks = []
        self.selector = selectors.DefaultSelector()
        self._rest = {}     # sock -> what it received after its last newline
        self._sent = 0      # lines sent so far: numbers them, and picks the next sender

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def add(self, count):
        """Connect count more clients and settle(); all or nothing: on Failed none stays."""
        try:
            new = _connect(self.address, count)
        except OSError as error:
            raise Failed(f"connecting client {len(self.socks) + 1} failed: {error}") from None
        for sock in new:
            self.socks.append(sock)
            self._rest[sock] = b""
            self.selector.register(sock, selectors.EVENT_READ)
        try:
            self.settle()
        except Failed:
            self._remove(new)
            raise

    def settle(self):
        """Wait until every client is in the chat and has read what came before.

        A probe line goes out from the next speaker, again and again (after
        FIRST_PROBE_WAIT, then twice as long each time), until each client
        has received one, or sent one that another client received (the
        lesson's chat sends nothing back to the sender).  A server sends each
        client its lines in order, so a client that has a probe has read
        every notice queued for it before.
        """
        senders = {}
        waiting = set(self.socks)

        def arrived(sock, text):
            waiting.discard(sock)
            waiting.discard(senders[text])

        next_probe = now = time.monotonic()
        deadline = now + WAIT
        pause = FIRST_PROBE_WAIT
        while waiting:
            if now >= next_probe:
                sender, text = self._send(b"probe")
                senders[text] = sender
                next_probe, pause = now + pause, min(2 * pause, 1.0)
            self._read(senders, arrived, min(next_probe, deadline))
            now = time.monotonic()
            if waiting and now >= deadline:
                raise Failed(f"{len(waiting)} of {len(self.socks)} clients were not in the "
                             f"chat after {WAIT:g} s")

    def broadcast(self):
        """Send a line from the next speaker; return seconds until every listener had it."""
        if len(self.socks) <= SPEAKERS:
            raise ValueError(f"a broadcast needs listeners: more than {SPEAKERS} clients")
        waiting = set(self.socks[SPEAKERS:])
        start = time.perf_counter()
        sender, text = self._send(b"line")
        deadline = time.monotonic() + WAIT
        while waiting:
            self._read({text: sender}, lambda sock, _: waiting.discard(sock), deadline)
            if waiting and time.monotonic() >= deadline:
                raise Failed(f"{len(waiting)} of {len(self.socks) - SPEAKERS} listeners did "
                             f"not get a line within {WAIT:g} s")
        return time.perf_counter() - start

    def close(self):
        """Close every client and the selector."""
        self._remove(list(self.socks))
        self.selector.close()

    def _send(self, kind):
        self._sent += 1
        text = b"%s %d" % (kind, self._sent)
        sender = self.socks[self._sent % min(SPEAKERS, len(self.socks))]
        sender.sendall(text + b"\n")  # a short line always fits: every client is read at once
        return sender, text

    def _read(self, texts, arrived, until):
        # One select() until the monotonic time until, then every socket that has data is
        # read: arrived(sock, text) for each complete line that ends with a text of texts.
        for key, _ in self.selector.select(max(until - time.monotonic(), 0)):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except OSError as error:
                raise Failed(f"a client's connection failed: {error}") from None
            if not data:
                raise Failed("the server closed a client's connection")
            *lines, self._rest[sock] = (self._rest[sock] + data).split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                for text in texts:
                    if line.endswith(text):
                        arrived(sock, text)

    def _remove(self, socks):
        for sock in socks:
            self.selector.unregister(sock)
            sock.close()
            self.socks.remove(sock)
            del self._rest[sock]


def chat_figures(address, pid, counts, *, messages, cap=None, step=STEP, messages_at_most=5):
    """Memory per client and fan-out at each of counts clients; then, with cap, the ramp.

    counts is increasing, each above SPEAKERS.  Clients join up to each count;
    the server's memory is read, and messages lines are timed.  With a cap,
    clients are then added step at a time until cap or a step fails; if
    that held more than the last count, memory and fan-out
    (messages_at_most lines) are measured again at the most held.  Returns
    {"memory": {count: bytes per client}, "fanout": {count: [seconds per
    line]}, "cap", "held", "held_why", "memory_at_most", "fanout_at_most"}
    (the last two None and [] if not measured again; fanout_at_most is []
    too if the server no longer served every client held).
    """
    figures = {"memory": {}, "fanout": {}, "cap": cap, "memory_at_most": None,
               "fanout_at_most": []}
    with Clients(address) as clients:
        clients.add(SPEAKERS)
        before = rss_bytes(pid)
        for count in counts:
            clients.add(count - len(clients.socks))
            figures["memory"][count] = (rss_bytes(pid) - before) / (count - SPEAKERS)
            figures["fanout"][count] = [clients.broadcast() for _ in range(messages)]
        figures["held"], figures["held_why"] = len(clients.socks), "no ramp"
        if cap is not None:
            figures["held_why"] = f"the cap of {cap}"
            while len(clients.socks) < cap:
                try:
                    clients.add(min(step, cap - len(clients.socks)))
                except Failed as error:  # that step's clients are gone again
                    figures["held_why"] = str(error)
                    break
            figures["held"] = held = len(clients.socks)
            if held == counts[-1]:
                return figures
            with contextlib.suppress(Failed):
                clients.settle()  # after a failed step, the others have read its leavers
                figures["fanout_at_most"] = [clients.broadcast()
                                             for _ in range(messages_at_most)]
            figures["memory_at_most"] = (rss_bytes(pid) - before) / (held - SPEAKERS)
    return figures


def side_by_side(engines, serve, *, echo_connections, echo_seconds, chat_clients, messages,
                 cap=None, step=STEP, report=None):
    """Measure every engine, one after the other; return {engine: figures}.

    serve(engine, service) is a context manager that runs that engine's
    "echo" or "chat" server and yields (address, pid), such as
    served() with the right command.  figures is chat_figures()'s dict
    plus "echo": {connections: round trips per second, over echo_seconds}
    and "seconds" (what measuring the engine took).  report(engine,
    figures) is called as each engine is done.
    """
    results = {}
    for engine in engines:
        started = time.monotonic()
        with serve(engine, "echo") as (address, _):
            echo = {count: echo_rate(address, count, echo_seconds) for count in echo_connections}
        with serve(engine, "chat") as (address, pid):
            figures = chat_figures(address, pid, chat_clients, messages=messages, cap=cap,
                                   step=step)
        figures["echo"] = echo
        figures["seconds"] = time.monotonic() - started
        results[engine] = figures
        if report is not None:
            report(engine, figures)
    return results


def percentile(values, fraction):
    """The fraction quantile of values, interpolated between the nearest two (nan if none)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values):
    """(median, 99th percentile) of values."""
    return percentile(values, 0.5), percentile(values, 0.99)


def _rows(figures):
    # (label, unit, value, format) for each figure of one engine, in the table's order.
    again = figures["memory_at_most"] is not None
    rows = []
    if figures["cap"] is not None:
        rows.append((f"chat clients held at once (cap {figures['cap']})", "", figures["held"],
                     "d"))
    rows += [(f"memory per chat client, {count} clients", "KiB", size / 1024, ".1f")
             for count, size in figures["memory"].items()]
    if again:
        rows.append(("memory per chat client, the most held", "KiB",
                     figures["memory_at_most"] / 1024, ".1f"))
    fanouts = [(f"{count} clients", times) for count, times in figures["fanout"].items()]
    if again:
        fanouts.append(("the most held", figures["fanout_at_most"]))
    for among, times in fanouts:
        median, p99 = summary(times)
        rows += [(f"fan-out, {among}, median", "ms", median * 1000, ".1f"),
                 (f"fan-out, {among}, 99th percentile", "ms", p99 * 1000, ".1f")]
    rows += [(f"echo round trips per second, {count} connection{'s' * (count != 1)}", "", rate,
              ".0f") for count, rate in figures["echo"].items()]
    return rows


def table(results, relative_to=None):
    """side_by_side()'s results as text: a row per figure, a column per engine.

    With relative_to (an engine), each figure is divided by that engine's.
    """
    names = list(results)
    columns = {name: _rows(figures) for name, figures in results.items()}
    labels = [label if not unit or relative_to else f"{label} ({unit})"
              for label, unit, _, _ in columns[names[0]]]
    width = max(map(len, labels)) + 2
    widths = [max(10, len(name) + 2) for name in names]
    lines = [" " * width + "".join(f"{name:>{wide}}" for name, wide in zip(names, widths))]
    for row, label in enumerate(labels):
        cells = []
        for name, wide in zip(names, widths):
            _, _, value, form = columns[name][row]
            if relative_to is not None:
                base = columns[relative_to][row][2]
                value, form = (value / base if base else math.nan), ".2f"
            cells.append(f"{value:>{wide}{form}}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)
