"""The checks and data of lesson 04's exercises: many clients at once.

Each check takes what the learner wrote (a handler, a mix-in, a list of
predictions) and either prints one "Check passed" line or raises
``ExerciseFailed`` with one sentence saying what is wrong, in terms of the
learner's own answer and without naming the right one.  Answers are judged
by real servers on 127.0.0.1 port 0, never by their spelling:

* ``check_shared_counter``: five handlers run at once on a threading server
  whose ``gap()`` (between the handler's read and its write) waits until
  every handler has read, so an unprotected read-modify-write loses four
  updates *every* time, not now and then;
* ``check_pool_mixin``: a mix-in that runs requests on a bounded
  ``concurrent.futures`` thread pool must call the same hooks in the same
  order as ``ThreadingMixIn`` (with and without an error), never run more
  than ``max_workers`` requests at once but do run that many, and leave no
  thread behind after ``server_close()``;
* ``check_timeline_prediction``: how many requests a real server had in
  progress at once, for each scenario of ``TIMELINE_QUESTIONS``.

Every check is bounded in time: clients have timeouts, servers are stopped
within ``STOP_TIMEOUT`` and every wait has its own bound, so a handler that
never returns fails with a sentence instead of hanging the notebook.

Forking: from Python 3.12 ``os.fork()`` in a process that has threads emits
a DeprecationWarning (the child gets only the thread that forked; a lock
another thread held stays locked in it).  ``forking_on_purpose()`` ignores
exactly that warning, for one block, where a lesson or a check forks on
purpose; ``FORK_WARNING`` is its message as a regular expression.
"""

import contextlib
import inspect
import os
import socketserver
import threading
import time
import warnings

import sockserv

from . import harness
from .checks import ExerciseFailed, check, describe_error, passed, require_filled_in
from .trace import Recorder, traced

__all__ = ["FORK_WARNING", "forking_on_purpose", "most_at_once",
           "COUNTER_CLIENTS", "counting_server", "check_shared_counter",
           "POOL_SIZE", "check_pool_mixin",
           "TIMELINE_CLIENTS", "TIMELINE_QUESTIONS", "timeline_questions", "observe_timeline",
           "check_timeline_prediction"]

#: Bounds of the checks (tests shorten some of them).
CLIENT_TIMEOUT = harness.CLIENT_TIMEOUT
STOP_TIMEOUT = harness.STOP_TIMEOUT

CAN_FORK = hasattr(os, "fork")


# -- forking on purpose ----------------------------------------------------------

#: The message os.fork() warns with from Python 3.12 when the process has
#: other threads (CPython's posixmodule.c), as a regular expression.
FORK_WARNING = (r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) "
                r"may lead to deadlocks in the child\.")


@contextlib.contextmanager
def forking_on_purpose():
    """Ignore, inside the block, only the DeprecationWarning of FORK_WARNING.

    warnings.catch_warnings() changes the process-wide filter list, so the
    filter also covers a serving thread that forks while the block runs;
    it is restored when the block ends.  Every other warning is untouched.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FORK_WARNING, category=DeprecationWarning)
        yield


# -- timelines ------------------------------------------------------------------------


def most_at_once(intervals):
    """The largest number of (start, end) intervals that overlap at one moment.

    An interval that ends exactly when another starts does not overlap it.
    """
    edges = sorted([(start, 1) for start, _ in intervals] +
                   [(end, -1) for _, end in intervals])  # at a tie, -1 sorts first
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _ask_in_parallel(address, count, data=b""):
    """count clients connect at once and each sends data; their replies (None where one failed)."""
    replies = [None] * count
    ready = threading.Barrier(count)

    def client(number):
        try:
            ready.wait(CLIENT_TIMEOUT)
            replies[number] = harness.talk(address, data, timeout=CLIENT_TIMEOUT)
        except (OSError, threading.BrokenBarrierError):
            pass  # replies[number] stays None: the check says so

    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(count)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(CLIENT_TIMEOUT + 1)
    return replies


# -- Exercise 1: a shared counter ------------------------------------------------------

#: How many handlers the counter server runs at once.
COUNTER_CLIENTS = 5
#: How long gap() waits for the other handlers before it gives up on them.
GAP_TIMEOUT = 0.5


def counting_server(impl, clients=COUNTER_CLIENTS):
    """A ThreadingTCPServer class on impl with ``count`` (0), ``gap()`` and ``gaps``.

    gap() stands for any slow step between reading ``count`` and writing
    it back: it waits (at most GAP_TIMEOUT seconds) until ``clients``
    handlers are in a gap at the same time, which forces every unprotected
    handler to read before any of them writes.  ``gaps`` counts the calls;
    ``met`` counts the gaps in which all the handlers met.  A handler that
    holds a lock around its read, gap and write waits alone: the wait ends
    after GAP_TIMEOUT and every later gap returns at once.  Handler threads
    are daemons, so a handler that never returns cannot keep server_close()
    waiting (a check must end).
    """

    class CountingServer(impl.ThreadingTCPServer):
        daemon_threads = True

        def __init__(self, *args, **kwargs):
            self.count = 0
            self.gaps = 0
            self.met = 0
            self._gaps_lock = threading.Lock()
            self._meeting = threading.Barrier(clients)
            super().__init__(*args, **kwargs)

        def gap(self):
            """Wait until every handler is here too (at most GAP_TIMEOUT s): a slow step."""
            with self._gaps_lock:
                self.gaps += 1
            try:
                self._meeting.wait(GAP_TIMEOUT)
            except threading.BrokenBarrierError:
                return  # nobody else could get here: a lock keeps them out
            with self._gaps_lock:
                self.met += 1

    return CountingServer


def _is_handler_class(obj):
    bases = (socketserver.BaseRequestHandler, sockserv.BaseRequestHandler)
    return inspect.isclass(obj) and issubclass(obj, bases)


def check_shared_counter(handler_class):
    """Run handler_class for COUNTER_CLIENTS clients at once; the count must be right."""
    check(inspect.isclass(handler_class),
          "pass the handler class itself, not an instance or a string.")
    require_filled_in(handler_class)
    check(_is_handler_class(handler_class),
          f"{handler_class.__name__} should be a request handler class "
          f"(a subclass of BaseRequestHandler).")
    for label, impl in harness.IMPLEMENTATIONS.items():
        server_class = harness.recording_errors(counting_server(impl))
        with server_class(harness.LOCALHOST, handler_class) as server:
            try:
                with harness.serving(server, stop_timeout=STOP_TIMEOUT):
                    replies = _ask_in_parallel(server.server_address, COUNTER_CLIENTS)
            except harness.TimedOut:
                replies = [None]
            check(None not in replies,
                  f"on {label}, a client was still waiting after {CLIENT_TIMEOUT:g} s: "
                  f"a handler waits for something that never happens, such as a lock "
                  f"that is never released.")
            check(not server.errors,
                  f"on {label}, handle() raised "
                  f"{describe_error(server.errors[0][1]) if server.errors else ''}.")
            check(server.gaps == COUNTER_CLIENTS,
                  f"on {label}, handle() called self.server.gap() {server.gaps} times for "
                  f"{COUNTER_CLIENTS} requests: keep one gap in every request, it stands "
                  f"for the slow step a real handler has between the read and the write.")
            lost = COUNTER_CLIENTS - server.count
            check(lost == 0,
                  f"on {label}, {COUNTER_CLIENTS} handlers ran at once and server.count "
                  f"went from 0 to {server.count!r}: "
                  + (f"{lost} updates were lost, so one handler still gets in between "
                     f"another's read and its write." if isinstance(lost, int) and lost > 0
                     else "each request should add exactly 1."))
    passed(f"{handler_class.__name__} counted all {COUNTER_CLIENTS} requests that ran at "
           f"once, on socketserver and sockserv")


# -- Exercise 2: a bounded thread pool -------------------------------------------------

#: max_workers of the pool in the check.
POOL_SIZE = 2
#: How long a handler of the concurrency run waits for a request more than the pool allows.
CROWD_WAIT = 0.3


def _hooks_after(events, start="server.process_request"):
    return events[events.index(start):] if start in events else events


def _pool_server_class(mixin, impl):
    """(description, a quiet server class) with mixin before impl.TCPServer."""
    where = f"({mixin.__name__}, TCPServer)"
    try:
        server_class = type("PoolServer", (mixin, impl.TCPServer), {"max_workers": POOL_SIZE})
    except TypeError:
        raise ExerciseFailed(
            f"Python cannot build a class with the bases {where}: a mix-in should "
            f"inherit from object only.") from None
    return where, harness.recording_errors(server_class)


def _new_server(server_class, handler_class, where):
    try:
        return server_class(harness.LOCALHOST, handler_class)
    except Exception as error:
        raise ExerciseFailed(f"creating a server with the bases {where} raised "
                             f"{describe_error(error)}.") from None


def _traced_hooks(mixin_or_none, impl, fails):
    """The hooks (from process_request on) of one request, and the server's errors."""
    recorder = Recorder()

    class Reply(impl.BaseRequestHandler):
        def handle(self):
            if fails:
                raise ValueError("the handler failed")
            self.request.sendall(b"ok")

    handler = traced(Reply, recorder)
    if mixin_or_none is None:
        where = "(ThreadingMixIn, TCPServer)"
        server_class = harness.recording_errors(impl.ThreadingTCPServer)
    else:
        where, server_class = _pool_server_class(mixin_or_none, impl)
    server = _new_server(traced(server_class, recorder), handler, where)
    try:
        with harness.serving(server, stop_timeout=STOP_TIMEOUT):
            try:
                harness.talk(server.server_address, timeout=CLIENT_TIMEOUT)
            except OSError:
                pass  # the hooks say what went wrong
            # The client sees the end at shutdown_request(); close_request() follows
            # in the handler's thread.  A bounded wait that returns as soon as it
            # is recorded: a right answer costs nothing, a wrong one the bound.
            recorder.wait_for("server.close_request", CLIENT_TIMEOUT)
    except harness.TimedOut:
        raise ExerciseFailed(f"a server with the bases {where} did not stop within "
                             f"{STOP_TIMEOUT:g} s: server_close() waits for "
                             f"something that never happens.") from None
    return _hooks_after(recorder.events), server.errors


def _crowd_run(mixin, impl, clients=2 * POOL_SIZE):
    """Serve clients at once; (the most handlers at once, threads left alive, replies, errors)."""
    lock = threading.Lock()
    state = {"running": 0, "most": 0}
    crowded = threading.Condition(lock)
    handler_threads = []

    class Crowd(impl.BaseRequestHandler):
        def handle(self):
            with crowded:
                handler_threads.append(threading.current_thread())
                state["running"] += 1
                state["most"] = max(state["most"], state["running"])
                crowded.notify_all()
                # Wait for one request more than the pool allows, for a while.
                crowded.wait_for(lambda: state["running"] > POOL_SIZE, CROWD_WAIT)
                state["running"] -= 1
            self.request.sendall(b"ok")

    where, server_class = _pool_server_class(mixin, impl)
    server = _new_server(server_class, Crowd, where)
    try:
        with harness.serving(server, stop_timeout=STOP_TIMEOUT):
            replies = _ask_in_parallel(server.server_address, clients)
    except harness.TimedOut:
        raise ExerciseFailed(f"a server with the bases {where} did not stop within "
                             f"{STOP_TIMEOUT:g} s: server_close() waits for "
                             f"something that never happens.") from None
    alive = {thread for thread in handler_threads if thread.is_alive()}
    return state["most"], len(alive), replies, server.errors, where


def check_pool_mixin(mixin):
    """Check a mix-in that runs each request on a bounded concurrent.futures thread pool."""
    check(inspect.isclass(mixin),
          "pass the mix-in class itself, not an instance or a string.")
    require_filled_in(mixin)
    check(not issubclass(mixin, (socketserver.BaseServer, sockserv.BaseServer)),
          f"{mixin.__name__} is a server class: a mix-in inherits from object only, "
          f"and the server class comes last in the bases.")
    for label, impl in harness.IMPLEMENTATIONS.items():
        for fails in (False, True):
            expected, _ = _traced_hooks(None, impl, fails)
            got, errors = _traced_hooks(mixin, impl, fails)
            kind = "whose handle() raises" if fails else "that succeeds"
            check(got == expected,
                  f"on {label}, for a request {kind} your server called "
                  f"{' -> '.join(got)}, but ThreadingMixIn calls "
                  f"{' -> '.join(expected)}: moving a request to another thread "
                  f"must not change what runs for it.")
            unexpected = [error for _, error in errors if not fails
                          or not isinstance(error, ValueError)]
            check(not unexpected,
                  f"on {label}, your server's handle_error() got "
                  f"{describe_error(unexpected[0]) if unexpected else ''} for a "
                  f"request {kind}.")
        most, alive, replies, errors, where = _crowd_run(mixin, impl)
        check(not errors,
              f"on {label}, your server's handle_error() got "
              f"{describe_error(errors[0][1]) if errors else ''} while "
              f"{2 * POOL_SIZE} clients were served.")
        check(most >= POOL_SIZE,
              f"on {label}, with max_workers = {POOL_SIZE} and {2 * POOL_SIZE} clients at "
              f"once, never more than {most} request ran at a time: the serving thread "
              f"must hand each request over and go back to accepting.")
        check(most <= POOL_SIZE,
              f"on {label}, with max_workers = {POOL_SIZE}, {most} requests ran at once: "
              f"the bound holds only if every request of a server goes to one pool "
              f"of max_workers threads.")
        check(alive == 0,
              f"on {label}, {alive} of the threads that ran handlers were still alive "
              f"after server_close() returned: closing the server must also shut "
              f"its pool down and wait for it.")
        check(None not in replies,
              f"on {label}, with {2 * POOL_SIZE} clients at once a client got no reply "
              f"within {CLIENT_TIMEOUT:g} s.")
    passed(f"{mixin.__name__} keeps ThreadingMixIn's hook order, runs at most and at "
           f"least max_workers requests at once and leaves no thread behind, on "
           f"socketserver and sockserv")


# -- Exercise 3: predict a timeline ------------------------------------------------------

#: Clients that arrive together in every scenario of exercise 3.
TIMELINE_CLIENTS = 3
#: How long each handler of exercise 3 takes (it waits, then answers).
TIMELINE_WAIT = 0.2
#: max_children of the forking scenario.
TIMELINE_MAX_CHILDREN = 2

#: The scenarios of exercise 3; each handler waits TIMELINE_WAIT s, then answers.
TIMELINE_QUESTIONS = (
    "TCPServer",
    "ThreadingTCPServer",
    "ThreadingTCPServer, every handler holding one shared Lock while it waits",
    "ForkingTCPServer with max_children = 2",
)


#: A busy machine can start a client, a thread or a fork later than TIMELINE_WAIT after
#: another, and so hide overlap in one run (it can never add any): a run that showed fewer
#: requests at once than the server allows is repeated, with these longer waits.
TIMELINE_RETRY_WAITS = (0.5, 1.0)


def _most_allowed(question):
    """How many requests at once the scenario's server allows, by its design."""
    if question == "TCPServer" or "shared Lock" in question:
        return 1  # one serving thread; or handlers that take turns holding one lock
    if question.startswith("ForkingTCPServer"):
        return min(TIMELINE_MAX_CHILDREN, TIMELINE_CLIENTS)
    return TIMELINE_CLIENTS  # a thread per request, none waiting for another


def _timeline_setup(question, wait):
    """(server class, handler class) of one scenario, on the stdlib; each handler takes wait s."""
    shared = threading.Lock()

    class Timed(socketserver.BaseRequestHandler):
        holds_lock = question.startswith("ThreadingTCPServer, every")

        def handle(self):
            with shared if self.holds_lock else contextlib.nullcontext():
                start = time.monotonic()  # one clock for every process on Linux and macOS
                time.sleep(wait)
                end = time.monotonic()
            self.request.sendall(f"{start!r} {end!r}".encode())

    name = question.split(" ", 1)[0].rstrip(",")
    attributes = ({"max_children": TIMELINE_MAX_CHILDREN}
                  if question.startswith("ForkingTCPServer") else {})
    return type(name, (getattr(socketserver, name),), attributes), Timed


def _observe_once(question, wait):
    """Run one scenario once, each handler taking wait s; the most requests in progress at once."""
    server_class, handler_class = _timeline_setup(question, wait)
    with forking_on_purpose(), server_class(harness.LOCALHOST, handler_class) as server:
        with harness.serving(server, stop_timeout=STOP_TIMEOUT):
            replies = _ask_in_parallel(server.server_address, TIMELINE_CLIENTS)
    if None in replies:
        raise RuntimeError(f"a client of {question!r} got no reply")
    return most_at_once([tuple(map(float, reply.split())) for reply in replies])


def observe_timeline(question):
    """Run one scenario of TIMELINE_QUESTIONS; the most requests that were in progress at once.

    A run that showed fewer than the server allows is repeated with longer waits
    (TIMELINE_RETRY_WAITS); if none shows it, ExerciseFailed says the machine was too busy.
    """
    allowed = _most_allowed(question)
    for wait in (TIMELINE_WAIT,) + TIMELINE_RETRY_WAITS:
        seen = _observe_once(question, wait)
        if seen >= allowed:
            return seen
    raise ExerciseFailed(
        f"this computer was too busy to run {question!r}: its requests never overlapped as "
        f"much as that server allows in {1 + len(TIMELINE_RETRY_WAITS)} tries; run it again.")


def timeline_questions():
    """The scenarios this platform can run (no forking server without os.fork())."""
    return tuple(q for q in TIMELINE_QUESTIONS if CAN_FORK or "Forking" not in q)


def check_timeline_prediction(predicted):
    """Compare predicted numbers of requests in progress at once with real servers."""
    check(isinstance(predicted, dict),
          "predicted should be a dict from scenario to a number of requests.")
    require_filled_in(predicted, "predicted")
    for question in timeline_questions():
        check(question in predicted, f"predicted has no entry for {question!r}.")
        value = predicted[question]
        check(isinstance(value, int) and not isinstance(value, bool),
              f"predicted[{question!r}] should be a whole number of requests, not "
              f"{value!r}.")
        check(1 <= value <= TIMELINE_CLIENTS,
              f"predicted[{question!r}] is {value}, but with {TIMELINE_CLIENTS} clients "
              f"between 1 and {TIMELINE_CLIENTS} requests can be in progress at once.")
    for question in timeline_questions():
        seen = observe_timeline(question)
        check(seen == predicted[question],
              f"you predicted {predicted[question]} at once for {question!r}, and a "
              f"real server did otherwise: ask what runs each handler, and what "
              f"makes one handler wait for another.")
    passed(f"how many requests run at once, for all {len(timeline_questions())} scenarios")
