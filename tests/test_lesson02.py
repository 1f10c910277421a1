"""Lesson 02's exercise checks: they pass the worked solutions and fail each
plausible wrong answer with one sentence that says what is wrong, without
naming the right answer, within a bound.

The leak guard in conftest.py checks that no check leaves a thread, a child
process or a socket behind.  No check of this lesson creates files.
"""

import re
import sys
import threading

import pytest

from lesson_checks import BOTH, fails_with, passes, short_bounds_for
from sockserv.teach import lesson02
from sockserv.teach.harness import IMPLEMENTATIONS

stdlib, sockserv = IMPLEMENTATIONS["stdlib"], IMPLEMENTATIONS["sockserv"]
short_bounds = short_bounds_for(lesson02, client=0.5, stop=0.5)


# -- the version facts the lesson prints around ---------------------------------------


@BOTH
def test_newer_names_exist_exactly_from_their_version(impl):
    for name, since in lesson02.NEWER_NAMES.items():
        assert (name in impl.__all__) == (sys.version_info >= since), name


@BOTH
def test_newer_names_have_the_bases_the_lesson_shows(impl):
    assert set(lesson02.NEWER_BASES) == set(lesson02.NEWER_NAMES)
    for name, bases in lesson02.NEWER_BASES.items():
        if hasattr(impl, name):
            assert [base.__name__ for base in getattr(impl, name).__bases__] == list(bases)


def test_newer_attributes_exist_exactly_from_their_version():
    for name, since in lesson02.NEWER_ATTRIBUTES.items():
        for cls in (stdlib.TCPServer, stdlib.UDPServer):
            assert hasattr(cls, name) == (sys.version_info >= since), (cls, name)


@BOTH
def test_stable_names_are_the_same_on_both_and_have_no_newer_name(impl):
    names = lesson02.stable_names(impl)
    assert sorted(names) == sorted(lesson02.stable_names(stdlib))
    assert not set(names) & set(lesson02.NEWER_NAMES)
    assert len(names) == 16  # Linux and macOS: what the notebook prints


# -- exercise 1: the MRO and the suppliers -------------------------------------------

RIGHT_MRO = ["ThreadingUnixDatagramServer", "ThreadingMixIn",
             "UnixDatagramServer", "UDPServer", "TCPServer", "BaseServer",
             "object"]
RIGHT_SUPPLIERS = {"process_request": "ThreadingMixIn",
                   "server_close": "ThreadingMixIn",
                   "get_request": "UDPServer",
                   "server_activate": "UDPServer",
                   "finish_request": "BaseServer",
                   "address_family": "UnixDatagramServer",
                   "socket_type": "UDPServer"}


@BOTH
def test_the_expected_answers_are_what_python_does(impl):
    cls = getattr(impl, lesson02.MRO_QUESTION)
    assert [c.__name__ for c in cls.__mro__] == RIGHT_MRO
    assert {name: lesson02.supplier(cls, name)
            for name in lesson02.SUPPLIER_QUESTIONS} == RIGHT_SUPPLIERS


def test_mro_prediction_passes_on_the_solution(capsys):
    passes(lesson02.check_mro_prediction, RIGHT_MRO, dict(RIGHT_SUPPLIERS), capsys=capsys)


def test_mro_prediction_accepts_classes_as_well_as_names(capsys):
    classes = list(stdlib.ThreadingUnixDatagramServer.__mro__)
    suppliers = {name: getattr(stdlib, value) if value != "object" else object
                 for name, value in RIGHT_SUPPLIERS.items()}
    passes(lesson02.check_mro_prediction, classes, suppliers, capsys=capsys)


def test_mro_prediction_fails_on_the_starter_with_fill_in():
    starter_mro = ["ThreadingUnixDatagramServer", ..., "object"]
    starter_suppliers = dict.fromkeys(RIGHT_SUPPLIERS, ...)
    fails_with(lesson02.check_mro_prediction, starter_mro, starter_suppliers,
               words="fill in the ... in predicted_mro first")
    fails_with(lesson02.check_mro_prediction, RIGHT_MRO, starter_suppliers,
               words="fill in the ... in predicted_suppliers first")
    fails_with(lesson02.check_mro_prediction, ["ThreadingUnixDatagramServer", "..."],
               RIGHT_SUPPLIERS, words="fill in the ... in predicted_mro first")


# Wrong MROs a learner writes, with the words of the rule each one breaks.
WRONG_MROS = {
    "server chain first (bases reversed)": (
        ["ThreadingUnixDatagramServer", "UnixDatagramServer", "UDPServer", "TCPServer",
         "BaseServer", "ThreadingMixIn", "object"],
        "lists its bases as (ThreadingMixIn, UnixDatagramServer)"),
    "the mix-in after its partner only": (
        ["ThreadingUnixDatagramServer", "UnixDatagramServer", "ThreadingMixIn",
         "UDPServer", "TCPServer", "BaseServer", "object"],
        "the MRO keeps that order"),
    "a base before its subclass": (
        ["ThreadingUnixDatagramServer", "ThreadingMixIn", "UDPServer",
         "UnixDatagramServer", "TCPServer", "BaseServer", "object"],
        "puts UDPServer before UnixDatagramServer, but a class always comes before its own bases"),
    "object in the middle (depth first)": (
        ["ThreadingUnixDatagramServer", "ThreadingMixIn", "object", "UnixDatagramServer",
         "UDPServer", "TCPServer", "BaseServer"],
        "a class always comes before its own bases"),
    "UDPServer skipped": (
        [n for n in RIGHT_MRO if n != "UDPServer"], "leaves out a class"),
    "object forgotten": (RIGHT_MRO[:-1], "down to object"),
    "a class twice": (RIGHT_MRO[:3] + ["ThreadingMixIn"] + RIGHT_MRO[3:], "appears 2 times"),
    "a class that is not an ancestor": (
        ["ThreadingUnixDatagramServer", "ThreadingMixIn", "UnixDatagramServer",
         "UnixStreamServer", "TCPServer", "BaseServer", "object"],
        "'UnixStreamServer' is not a class that ThreadingUnixDatagramServer inherits from"),
    "the class itself left out": (RIGHT_MRO[1:], "starts with the class itself"),
}


@pytest.mark.parametrize("case", list(WRONG_MROS))
def test_mro_prediction_fails_on_a_wrong_mro_without_naming_the_answer(case):
    wrong, words = WRONG_MROS[case]
    message = fails_with(lesson02.check_mro_prediction, wrong, RIGHT_SUPPLIERS, words=words)
    # Never "position N ... Python looks in X there": the message names only
    # classes the learner wrote, and never a position.
    assert "position" not in message
    named = set(re.findall(r"\b[A-Z]\w+", message)) & set(RIGHT_MRO)
    assert named <= set(wrong) | {lesson02.MRO_QUESTION}, message


def test_a_wrong_position_does_not_reveal_the_class_that_belongs_there():
    # The old check said "position 4 is 'TCPServer', but Python looks in
    # 'UDPServer' there"; swapping two neighbours must not name what is missing.
    wrong = ["ThreadingUnixDatagramServer", "ThreadingMixIn", "UnixDatagramServer",
             "TCPServer", "UDPServer", "BaseServer", "object"]
    message = fails_with(lesson02.check_mro_prediction, wrong, RIGHT_SUPPLIERS,
                         words="puts TCPServer before UDPServer")
    assert "position" not in message


WRONG_SUPPLIERS = {
    "get_request from TCPServer (its base defines it too)":
        ("get_request", "TCPServer", "so does a class before it on the MRO"),
    "address_family from TCPServer": ("address_family", "TCPServer", "so does a class before it"),
    "socket_type from UnixDatagramServer (it only changes the family)":
        ("socket_type", "UnixDatagramServer", "does not define socket_type in its own body"),
    "process_request from BaseServer": ("process_request", "BaseServer", "so does a class before it"),
    "finish_request from ThreadingMixIn": ("finish_request", "ThreadingMixIn", "does not define"),
    "process_request from ForkingMixIn": ("process_request", "ForkingMixIn", "not on the MRO"),
    "a typo": ("server_close", "ThreadingMixin", "not on the MRO"),
}


@pytest.mark.parametrize("case", list(WRONG_SUPPLIERS))
def test_mro_prediction_fails_on_a_wrong_supplier_without_naming_the_answer(case):
    name, wrong, words = WRONG_SUPPLIERS[case]
    message = fails_with(lesson02.check_mro_prediction, RIGHT_MRO,
                         dict(RIGHT_SUPPLIERS, **{name: wrong}), words=words)
    right = RIGHT_SUPPLIERS[name]
    assert right not in message.replace(lesson02.MRO_QUESTION, ""), message


def test_mro_prediction_fails_on_a_missing_supplier_and_on_wrong_types():
    missing = {k: v for k, v in RIGHT_SUPPLIERS.items() if k != "socket_type"}
    fails_with(lesson02.check_mro_prediction, RIGHT_MRO, missing, words="'socket_type'")
    fails_with(lesson02.check_mro_prediction, "ThreadingMixIn", RIGHT_SUPPLIERS,
               words="should be a list")
    fails_with(lesson02.check_mro_prediction, RIGHT_MRO, list(RIGHT_SUPPLIERS),
               words="should be a dict")


# -- exercise 2: which thread logs ---------------------------------------------------

RIGHT_PLACES = {
    "LogThreadTCP": {"log": "serving thread", "handle": "new thread"},
    "ThreadLogTCP": {"log": "nowhere", "handle": "new thread"},
    "LogTCPThread": {"log": "serving thread", "handle": "serving thread"},
}


@BOTH
@pytest.mark.parametrize("order", list(lesson02.LOG_ORDERS))
def test_the_expected_places_are_what_a_server_does(impl, order):
    assert lesson02.observe_log_order(impl, order) == RIGHT_PLACES[order]


def test_log_prediction_passes_on_the_solution(capsys):
    passes(lesson02.check_log_prediction, RIGHT_PLACES, capsys=capsys)


def test_log_prediction_fails_on_the_starter_with_fill_in():
    starter = {order: {"log": ..., "handle": ...} for order in lesson02.LOG_ORDERS}
    fails_with(lesson02.check_log_prediction, starter, words="fill in the ... in predicted first")


WRONG_PLACES = {
    # "the mix-in after ThreadingMixIn runs in the new thread"
    "ThreadLogTCP logs in the new thread": ("ThreadLogTCP", {"log": "new thread", "handle": "new thread"}),
    # "every process_request is reached, so it logs in the loop"
    "ThreadLogTCP logs in the serving thread": ("ThreadLogTCP", {"log": "serving thread", "handle": "new thread"}),
    # "ThreadingMixIn is in the bases, so requests get threads"
    "LogTCPThread handles in a new thread": ("LogTCPThread", {"log": "serving thread", "handle": "new thread"}),
    # "the logger comes first, so it runs in the thread it starts"
    "LogThreadTCP logs in the new thread": ("LogThreadTCP", {"log": "new thread", "handle": "new thread"}),
}


@pytest.mark.parametrize("case", list(WRONG_PLACES))
def test_log_prediction_fails_on_a_wrong_prediction_without_the_answer(case):
    order, wrong = WRONG_PLACES[case]
    message = fails_with(lesson02.check_log_prediction, dict(RIGHT_PLACES, **{order: wrong}),
                         words=f"did not do what you predicted for {order}")
    assert not any(place in message for place in lesson02.PLACES), message


def test_log_prediction_counts_further_wrong_predictions():
    everything_threads = {order: {"log": "new thread", "handle": "new thread"}
                          for order in lesson02.LOG_ORDERS}
    fails_with(lesson02.check_log_prediction, everything_threads, words="(and for 2 more)")


def test_log_prediction_refuses_unknown_places_and_shapes():
    fails_with(lesson02.check_log_prediction,
               dict(RIGHT_PLACES, LogTCPThread={"log": "main thread", "handle": "new thread"}),
               words="'main thread' is not one of")
    fails_with(lesson02.check_log_prediction,
               {k: v for k, v in RIGHT_PLACES.items() if k != "LogTCPThread"},
               words="no entry for LogTCPThread")
    fails_with(lesson02.check_log_prediction,
               dict(RIGHT_PLACES, LogTCPThread="serving thread"), words="keys 'log' and 'handle'")


# -- exercise 3: a request counter that works on either side of ThreadingMixIn --------


class CountInVerifyRequest:
    """The worked solution: verify_request runs in the serving loop for every request."""

    def __init__(self, *args, **kwargs):
        self.request_count = 0
        super().__init__(*args, **kwargs)

    def verify_request(self, request, client_address):
        accepted = super().verify_request(request, client_address)
        if accepted:
            self.request_count += 1
        return accepted


class CountInFinishRequest:
    """Another right answer: finish_request, in the handler's thread, under a lock."""

    def __init__(self, *args, **kwargs):
        self.request_count = 0
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def finish_request(self, request, client_address):
        with self._count_lock:
            self.request_count += 1
        super().finish_request(request, client_address)


class CountInProcessRequest:
    """The starter: right only while the mix-in comes before ThreadingMixIn."""

    def __init__(self, *args, **kwargs):
        self.request_count = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        self.request_count += 1
        super().process_request(request, client_address)


class CountInProcessRequestThread(CountInProcessRequest):
    def process_request(self, request, client_address):  # not overridden after all
        super(CountInProcessRequest, self).process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        self.request_count += 1
        super().process_request_thread(request, client_address)


class CountOnTheClass:
    """One count shared by every server of the class."""
    request_count = 0

    def verify_request(self, request, client_address):
        type(self).request_count += 1
        return super().verify_request(request, client_address)


class CountOnTheMixIn:
    """One count shared by every server of every class, across runs."""
    request_count = 0

    def verify_request(self, request, client_address):
        CountOnTheMixIn.request_count += 1
        return super().verify_request(request, client_address)


class ForgetsToReturn(CountInVerifyRequest):
    def verify_request(self, request, client_address):
        self.request_count += 1
        super().verify_request(request, client_address)


class ForgetsSuperInit:
    def __init__(self, *args, **kwargs):
        self.request_count = 0

    def verify_request(self, request, client_address):
        self.request_count += 1
        return super().verify_request(request, client_address)


class NoStartingCount:
    def verify_request(self, request, client_address):
        self.request_count = getattr(self, "request_count", 0) + 1
        return super().verify_request(request, client_address)


class CountsTwice(CountInVerifyRequest):
    def process_request(self, request, client_address):
        self.request_count += 1
        super().process_request(request, client_address)


class RaisesInTheLoop(CountInVerifyRequest):
    def verify_request(self, request, client_address):
        self.request_cuont += 1  # a typo: AttributeError in the serving loop


class RaisesInTheHandlerThread(CountInFinishRequest):
    def finish_request(self, request, client_address):
        raise KeyError("request_count")


@BOTH
def test_the_mixins_behave_on_each_implementation_as_the_check_expects(impl):
    # The wrong answer of the starter really is right in one order only.
    first = type("First", (CountInProcessRequest, impl.ThreadingMixIn, impl.TCPServer), {})
    second = type("Second", (impl.ThreadingMixIn, CountInProcessRequest, impl.TCPServer), {})
    assert lesson02.supplier(first, "process_request") == "CountInProcessRequest"
    assert lesson02.supplier(second, "process_request") == "ThreadingMixIn"


@pytest.mark.parametrize("mixin", [CountInVerifyRequest, CountInFinishRequest],
                         ids=lambda m: m.__name__)
def test_request_counter_passes_on_right_answers(mixin, capsys):
    passes(lesson02.check_request_counter, mixin, capsys=capsys)


WRONG_COUNTERS = {
    CountInProcessRequest: "(ThreadingMixIn, CountInProcessRequest, TCPServer), a server that received 2 requests counted 0",
    CountInProcessRequestThread: "counted 0",
    CountOnTheClass: "each server needs its own count",
    CountOnTheMixIn: "each server needs its own count",
    ForgetsToReturn: "got no reply: an override must go on to the next class",
    ForgetsSuperInit: "has no socket: an __init__ in a mix-in must call super().__init__",
    NoStartingCount: "has no request_count: give each server its count, 0",
    CountsTwice: "counted 4",
    RaisesInTheHandlerThread: "your mix-in raised KeyError",
}


@pytest.mark.parametrize("mixin", list(WRONG_COUNTERS), ids=lambda m: m.__name__)
def test_request_counter_fails_on_wrong_answers(mixin):
    message = fails_with(lesson02.check_request_counter, mixin, words=WRONG_COUNTERS[mixin])
    for hook in ("verify_request", "finish_request", "get_request"):
        assert hook not in message, message  # the sentence never names a hook that works


def test_request_counter_reports_an_error_in_the_serving_loop():
    fails_with(lesson02.check_request_counter, RaisesInTheLoop,
               words="your mix-in raised AttributeError")


def test_request_counter_fails_within_its_bound_on_a_mixin_that_never_returns(short_bounds):
    release = threading.Event()

    class WaitsForEver(CountInVerifyRequest):
        def verify_request(self, request, client_address):
            release.wait()  # a lock never released, say
            return super().verify_request(request, client_address)

    try:
        fails_with(lesson02.check_request_counter, WaitsForEver,
                   words="did not stop within 0.5 s")
    finally:
        release.set()  # let the stuck serving loop end, so nothing is left running
    for thread in threading.enumerate():
        if thread.name in ("serve_forever", "stop server"):
            thread.join(5)


def test_request_counter_refuses_servers_subclasses_of_threadingmixin_and_non_classes():
    fails_with(lesson02.check_request_counter, stdlib.ThreadingTCPServer,
               words="is a server class")

    class OnThreadingMixIn(CountInVerifyRequest, stdlib.ThreadingMixIn):
        pass  # right with the mix-in first; no class at all with it second

    fails_with(lesson02.check_request_counter, OnThreadingMixIn,
               words="no consistent MRO")
    fails_with(lesson02.check_request_counter, CountInVerifyRequest(),
               words="pass the mix-in class itself")
