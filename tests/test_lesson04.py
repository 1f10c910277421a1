"""Lesson 04's exercise checks: they pass the worked solutions and fail each
plausible wrong answer with one sentence that says what is wrong, without
naming the right answer, within a bound.

The leak guard in conftest.py checks that no check leaves a thread, a child
process or a socket behind.

Sooner failures: where a wrong mix-in fails only when a bound runs out that
it can never meet, the test shortens that one bound, for that one run, so
the same sentence comes sooner; every run a right answer (or the wrong one,
on its way to its mistake) must get through keeps its bounds.  The timeline
checks wait for nothing: their time is the scenarios' own handlers, whose
TIMELINE_WAIT is what makes requests overlap, so it stays.

The checks that fork ignore only the fork warning of Python 3.12+
(lesson04.forking_on_purpose), so pytest's warnings-as-errors still sees
every other warning.
"""

import concurrent.futures
import gc
import os
import re
import socketserver
import sys
import threading
import warnings

import pytest

from lesson_checks import fails_with, passes, short_bounds_for
from sockserv.teach import lesson04

NEEDS_FORK = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
# The client bound stays above the pool check's 2 rounds.
short_bounds = short_bounds_for(lesson04, client=1.5, stop=1.0)


# -- shared helpers ------------------------------------------------------------------


@pytest.mark.parametrize("intervals, most", [
    ([], 0),
    ([(0, 1)], 1),
    ([(0, 1), (1, 2), (2, 3)], 1),          # touching is not overlapping
    ([(0, 3), (1, 2), (1.5, 4)], 3),
    ([(0, 2), (1, 3), (2.5, 4)], 2),
])
def test_most_at_once(intervals, most):
    assert lesson04.most_at_once(intervals) == most


def test_forking_on_purpose_ignores_the_fork_warning_and_nothing_else():
    message = "This process (pid=123) is multi-threaded, use of fork() may lead to deadlocks in the child."
    with lesson04.forking_on_purpose():
        warnings.warn(message, DeprecationWarning)  # ignored (pytest makes warnings errors)
        with pytest.raises(DeprecationWarning):
            warnings.warn("something else is deprecated", DeprecationWarning)
        with pytest.raises(UserWarning):
            warnings.warn(message, UserWarning)  # the same text, another category


@NEEDS_FORK
@pytest.mark.skipif(sys.version_info < (3, 12), reason="the warning is new in 3.12")
def test_fork_warning_is_what_python_emits():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, args=(5,))
    other.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
    finally:
        stop.set()
        other.join()
    texts = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any(re.fullmatch(lesson04.FORK_WARNING, text) for text in texts), texts


# -- exercise 1: a shared counter -------------------------------------------------------

LOCK = threading.Lock()


class Racy(socketserver.BaseRequestHandler):  # the starter
    def handle(self):
        count = self.server.count
        self.server.gap()
        self.server.count = count + 1


class Locked(socketserver.BaseRequestHandler):  # the solution
    def handle(self):
        with LOCK:
            count = self.server.count
            self.server.gap()
            self.server.count = count + 1


class LockedClassAttribute(socketserver.BaseRequestHandler):
    lock = threading.Lock()

    def handle(self):
        with self.lock:
            count = self.server.count
            self.server.gap()
            self.server.count = count + 1


class LockMadeInHandle(socketserver.BaseRequestHandler):
    def handle(self):
        with threading.Lock():  # a new lock for every request: nobody else ever waits for it
            count = self.server.count
            self.server.gap()
            self.server.count = count + 1


class LockPerHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.lock = threading.Lock()  # one handler object per request: one lock each

    def handle(self):
        with self.lock:
            count = self.server.count
            self.server.gap()
            self.server.count = count + 1


class LockAroundTheWriteOnly(socketserver.BaseRequestHandler):
    def handle(self):
        count = self.server.count
        self.server.gap()
        with LOCK:
            self.server.count = count + 1


class GapRemoved(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.count += 1  # right almost always, by luck: the check wants the gap kept


class GapTwice(socketserver.BaseRequestHandler):
    def handle(self):
        with LOCK:
            self.server.gap()
            count = self.server.count
            self.server.gap()
            self.server.count = count + 1


class Placeholder(socketserver.BaseRequestHandler):
    def handle(self):
        ...


@pytest.mark.parametrize("handler", [Locked, LockedClassAttribute])
def test_shared_counter_passes_on_the_solutions(handler, capsys):
    passes(lesson04.check_shared_counter, handler, capsys=capsys)


@pytest.mark.parametrize("handler", [Racy, LockMadeInHandle, LockPerHandler,
                                     LockAroundTheWriteOnly])
def test_shared_counter_fails_on_lost_updates(handler):
    # All five meet in the gap, so it is 4 every time; any loss fails the same way.
    message = fails_with(lesson04.check_shared_counter, handler, words="updates were lost")
    assert "Lock" not in message and "with " not in message  # never names the answer


@pytest.mark.parametrize("handler, calls", [(GapRemoved, "0 times"), (GapTwice, "10 times")])
def test_shared_counter_wants_one_gap_per_request(handler, calls):
    fails_with(lesson04.check_shared_counter, handler, words=f"gap() {calls}")


def test_shared_counter_fails_on_the_placeholder_and_on_wrong_types():
    fails_with(lesson04.check_shared_counter, Placeholder,
               words="fill in the ... in Placeholder first")
    fails_with(lesson04.check_shared_counter, "Locked",
               words="pass the handler class itself")
    fails_with(lesson04.check_shared_counter, int, words="should be a request handler class")


def test_shared_counter_reports_a_handler_that_never_returns(short_bounds):
    release = threading.Event()

    class Stuck(socketserver.BaseRequestHandler):
        def handle(self):
            release.wait(10)  # a lock that is never released, in effect

    try:
        fails_with(lesson04.check_shared_counter, Stuck, words="a client was still waiting")
    finally:
        release.set()


def test_shared_counter_reports_a_handler_error():
    class Raises(socketserver.BaseRequestHandler):
        def handle(self):
            self.server.gap()
            raise KeyError("count")

    fails_with(lesson04.check_shared_counter, Raises, words="handle() raised KeyError")


# -- exercise 2: a bounded thread pool ---------------------------------------------------


class PoolMixIn:  # the solution
    max_workers = 2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.max_workers)

    def process_request_in_pool(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request, client_address):
        self.pool.submit(self.process_request_in_pool, request, client_address)

    def server_close(self):
        super().server_close()
        self.pool.shutdown(wait=True)


class StarterPool:
    max_workers = 2

    def process_request(self, request, client_address):
        ...

    def server_close(self):
        super().server_close()
        ...


class NoPool:
    max_workers = 2  # and nothing else: the server's own process_request runs


class SuperInThePool(PoolMixIn):
    def process_request(self, request, client_address):
        # BaseServer.process_request in a worker: no handle_error(), no
        # shutdown_request() when the handler raises (the error stays in the Future).
        self.pool.submit(super(PoolMixIn, self).process_request, request, client_address)


class NoShutdownRequest(PoolMixIn):
    def process_request_in_pool(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)


class PoolNeverShutDown(PoolMixIn):
    def server_close(self):
        super(PoolMixIn, self).server_close()


class PoolPerRequest(PoolMixIn):
    def process_request(self, request, client_address):
        pool = concurrent.futures.ThreadPoolExecutor(self.max_workers)
        pool.submit(self.process_request_in_pool, request, client_address)
        pool.shutdown(wait=False)


class PoolOnTheClass(PoolMixIn):
    pool = None

    def __init__(self, *args, **kwargs):
        super(PoolMixIn, self).__init__(*args, **kwargs)
        if PoolOnTheClass.pool is None:
            PoolOnTheClass.pool = concurrent.futures.ThreadPoolExecutor(self.max_workers)


def _close_request_waited_for_briefly(mixin, fails, seconds=0.2):
    """For check_pool_mixin's traced run of mixin with this fails, the close_request wait is brief.

    Every other traced run (ThreadingMixIn's, and mixin's other one) keeps
    the bound, as does everything else in that run (its client's talk()).
    """
    class BriefRecorder(lesson04.Recorder):
        def wait_for(self, event, timeout):
            return super().wait_for(event, min(timeout, seconds))

    def shorten(monkeypatch):
        traced_hooks = lesson04._traced_hooks

        def traced_hooks_brief_for_the_one_run(mixin_or_none, impl, fails_now):
            if mixin_or_none is not mixin or fails_now != fails:
                return traced_hooks(mixin_or_none, impl, fails_now)
            with monkeypatch.context() as brief:
                brief.setattr(lesson04, "Recorder", BriefRecorder)
                return traced_hooks(mixin_or_none, impl, fails_now)

        monkeypatch.setattr(lesson04, "_traced_hooks", traced_hooks_brief_for_the_one_run)

    return shorten


#: How a wrong mix-in whose failure waits for a bound it can never meet fails sooner.
POOL_SOONER = {
    # It serves one request at a time, so a handler's wait for one request more
    # than the pool allows can never end early: each of the four lasts CROWD_WAIT.
    NoPool: lambda monkeypatch: monkeypatch.setattr(lesson04, "CROWD_WAIT", 0.05),
    # A handle() that raises leaves its error in the Future: close_request()
    # never runs for it (the request that succeeds, before, is closed as it should be).
    SuperInThePool: _close_request_waited_for_briefly(SuperInThePool, fails=True),
    # It never calls shutdown_request(), so never close_request(), from the first request on.
    NoShutdownRequest: _close_request_waited_for_briefly(NoShutdownRequest, fails=False),
}


def test_pool_mixin_passes_on_the_solution(capsys):
    passes(lesson04.check_pool_mixin, PoolMixIn, capsys=capsys)


def test_pool_mixin_fails_on_the_starter_with_fill_in():
    fails_with(lesson04.check_pool_mixin, StarterPool, words="fill in the ... in StarterPool first")


@pytest.mark.parametrize("mixin, words", [
    (NoPool, "never more than 1 request ran at a time"),
    (SuperInThePool, "for a request whose handle() raises your server called"),
    (NoShutdownRequest, "for a request that succeeds your server called"),
    (PoolNeverShutDown, "still alive after server_close() returned"),
    (PoolPerRequest, "requests ran at once"),
    # The first server works; closing it shuts the one pool down for the next server.
    (PoolOnTheClass, "your server called server.process_request -> server.handle_error"),
])
# A request that nobody shuts down or closes is closed when it is collected, with a
# ResourceWarning (pytest reports it as unraisable): that is the learner's bug shown.
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_pool_mixin_fails_on_a_wrong_mixin(mixin, words, short_bounds, monkeypatch):
    POOL_SOONER.get(mixin, lambda mp: None)(monkeypatch)
    try:
        message = fails_with(lesson04.check_pool_mixin, mixin, words=words)
        assert "submit" not in message and "Executor" not in message  # never names the answer
    finally:
        gc.collect()  # an executor nobody shut down ends its threads when it is collected
        if PoolOnTheClass.pool is not None:
            PoolOnTheClass.pool.shutdown(wait=True)
            PoolOnTheClass.pool = None


def test_pool_mixin_refuses_a_server_class_and_an_instance():
    fails_with(lesson04.check_pool_mixin, socketserver.ThreadingTCPServer,
               words="is a server class")
    fails_with(lesson04.check_pool_mixin, "PoolMixIn", words="pass the mix-in class itself")


# -- exercise 3: predict a timeline -------------------------------------------------------

RIGHT = {
    "TCPServer": 1,
    "ThreadingTCPServer": 3,
    "ThreadingTCPServer, every handler holding one shared Lock while it waits": 1,
    "ForkingTCPServer with max_children = 2": 2,
}
WITH_FORK = RIGHT if hasattr(os, "fork") else {
    q: n for q, n in RIGHT.items() if "Forking" not in q}


def test_the_expected_answers_cover_the_questions():
    assert set(RIGHT) == set(lesson04.TIMELINE_QUESTIONS)


@pytest.mark.parametrize("question", list(WITH_FORK))
def test_the_expected_answers_are_what_a_server_does(question):
    assert lesson04.observe_timeline(question) == RIGHT[question]


def test_timeline_prediction_passes_on_the_solution(capsys):
    passes(lesson04.check_timeline_prediction, dict(RIGHT), capsys=capsys)


def test_timeline_prediction_fails_on_the_starter_with_fill_in():
    fails_with(lesson04.check_timeline_prediction, dict.fromkeys(RIGHT, ...),
               words="fill in the ... in predicted first")


@pytest.mark.parametrize("question, wrong", [
    ("ThreadingTCPServer, every handler holding one shared Lock while it waits", 3),
    pytest.param("ForkingTCPServer with max_children = 2", 3, marks=NEEDS_FORK),
    ("ThreadingTCPServer", 2),  # "two cores, so two at once": threads that wait do not need a core
    ("TCPServer", 3),
])
def test_timeline_prediction_fails_on_a_wrong_prediction(question, wrong):
    message = fails_with(lesson04.check_timeline_prediction, dict(RIGHT, **{question: wrong}),
                         words=f"you predicted {wrong} at once for {question!r}")
    assert str(RIGHT[question]) not in message.replace(str(wrong), "").replace(
        str(lesson04.TIMELINE_CLIENTS), "").replace("max_children = 2", "")


def _busy_machine(monkeypatch, hidden):
    """Runs of a scenario show hidden[question] (a list, one per try) first, then the truth.

    Returns the (question, wait) of every run, in order.
    """
    runs = []
    queued = {question: list(values) for question, values in hidden.items()}

    def observe_once(question, wait):
        runs.append((question, wait))
        return queued[question].pop(0) if queued.get(question) else RIGHT[question]

    monkeypatch.setattr(lesson04, "_observe_once", observe_once)
    return runs


def test_a_run_that_hid_overlap_is_repeated_with_a_longer_wait(monkeypatch):
    runs = _busy_machine(monkeypatch, {"ThreadingTCPServer": [2]})
    assert lesson04.observe_timeline("ThreadingTCPServer") == 3
    assert runs == [("ThreadingTCPServer", lesson04.TIMELINE_WAIT),
                    ("ThreadingTCPServer", lesson04.TIMELINE_RETRY_WAITS[0])]


def test_a_machine_too_busy_in_every_try_is_said_not_blamed_on_the_answer(monkeypatch):
    tries = 1 + len(lesson04.TIMELINE_RETRY_WAITS)
    _busy_machine(monkeypatch, {"ThreadingTCPServer": [1] * tries})
    message = fails_with(lesson04.check_timeline_prediction, dict(RIGHT),
                         words="too busy to run 'ThreadingTCPServer'")
    assert "you predicted" not in message


def test_a_run_that_hid_overlap_never_lets_a_low_prediction_pass(monkeypatch):
    # "Two cores, so two at once", on a run where a busy machine showed only two.
    _busy_machine(monkeypatch, {"ThreadingTCPServer": [2]})
    fails_with(lesson04.check_timeline_prediction, dict(RIGHT, ThreadingTCPServer=2),
               words="you predicted 2 at once for 'ThreadingTCPServer'")


def test_timeline_prediction_refuses_bad_shapes():
    fails_with(lesson04.check_timeline_prediction, [1, 3, 1, 2], words="should be a dict")
    missing = {q: n for q, n in RIGHT.items() if q != "TCPServer"}
    fails_with(lesson04.check_timeline_prediction, missing, words="no entry for 'TCPServer'")
    fails_with(lesson04.check_timeline_prediction, dict(RIGHT, TCPServer=True),
               words="should be a whole number")
    fails_with(lesson04.check_timeline_prediction, dict(RIGHT, TCPServer=4),
               words="between 1 and 3")
