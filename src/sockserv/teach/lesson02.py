"""The checks and data of lesson 02's exercises: the class hierarchy.

Each check takes what the learner wrote (a prediction, or a mix-in) and
either prints one "Check passed" line or raises ``ExerciseFailed`` with one
sentence saying what is wrong.  Predictions are compared with what Python
really does (the class's ``__mro__``, the threads a real server uses), and a
mix-in is judged by a real server on 127.0.0.1 port 0, never by its
spelling.  Every check is bounded in time: client sockets have timeouts and
servers are stopped within ``STOP_TIMEOUT``.

A failure message never names the right answer: it names the rule the
learner's answer breaks, in terms of the learner's own answer, so that
trying answers one after the other is slower than thinking.

Clients, serving, bounds and the two implementations come from
``sockserv.teach.harness``; this module keeps only lesson 02's checks and
the facts they rely on.
"""

import inspect
import socketserver
import threading

import sockserv

from . import harness
from .checks import ExerciseFailed, check, describe_error, passed, require_filled_in

__all__ = ["NEWER_NAMES", "NEWER_BASES", "NEWER_ATTRIBUTES", "stable_names", "supplier",
           "MRO_QUESTION", "SUPPLIER_QUESTIONS", "check_mro_prediction",
           "LoggingMixIn", "LOG_ORDERS", "PLACES", "observe_log_order",
           "check_log_prediction", "COUNTER_ATTRIBUTE", "check_request_counter"]


#: Bounds of the checks (tests shorten them): one client conversation, and
#: stopping a server whose handler or mix-in may never return.
CLIENT_TIMEOUT = harness.CLIENT_TIMEOUT
STOP_TIMEOUT = harness.STOP_TIMEOUT


# -- version facts ---------------------------------------------------------------

#: Public names of socketserver that not every supported Python (3.10+) has,
#: with the version that added them (socketserver docs: "Added in version 3.12:
#: The ForkingUnixStreamServer and ForkingUnixDatagramServer classes").
NEWER_NAMES = {"ForkingUnixStreamServer": (3, 12),
               "ForkingUnixDatagramServer": (3, 12)}

#: The bases of each newer name, (mix-in, server), as the 3.12 stdlib has them.
NEWER_BASES = {"ForkingUnixStreamServer": ("ForkingMixIn", "UnixStreamServer"),
               "ForkingUnixDatagramServer": ("ForkingMixIn", "UnixDatagramServer")}

#: Class attributes of the servers that are newer than Python 3.10: TCPServer
#: and UDPServer have allow_reuse_port from 3.11 (checked on CPython 3.10.13,
#: 3.11.7, 3.12.1 and 3.13.0; tests/test_lesson02.py checks the running one).
NEWER_ATTRIBUTES = {"allow_reuse_port": (3, 11)}


def stable_names(module):
    """module.__all__ without the names that only newer Pythons have, in order.

    Lessons print these, so that what they print is the same on every
    supported Python; the newer names are described in prose instead.
    """
    return [name for name in module.__all__ if name not in NEWER_NAMES]


def supplier(cls, name):
    """The name of the first class on cls's MRO whose own body defines name, or None."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__name__
    return None


def _is_placeholder(value):
    # ... itself is found by require_filled_in(); "..." in quotes counts too.
    return value is Ellipsis or (isinstance(value, str) and value.strip() in ("...", ""))


def _name_of(value):
    return value.__name__ if isinstance(value, type) else value


# -- Exercise 1: predict the lookups -----------------------------------------------

# Exercise 1 asks about this class; its stdlib and sockserv versions agree.
MRO_QUESTION = "ThreadingUnixDatagramServer"
SUPPLIER_QUESTIONS = ("process_request", "server_close", "get_request",
                      "server_activate", "finish_request", "address_family",
                      "socket_type")


def _check_mro_order(guess, real_class):
    """Fail with the first rule of the linearisation that guess breaks."""
    classes = {klass.__name__: klass for klass in real_class.__mro__}
    position = {name: index for index, name in enumerate(guess)}
    for name in guess:
        bases = [base.__name__ for base in classes[name].__bases__]
        for base in bases:
            check(position[base] > position[name],
                  f"predicted_mro puts {base} before {name}, but a class always "
                  f"comes before its own bases.")
        for earlier, later in zip(bases, bases[1:]):
            check(position[earlier] < position[later],
                  f"predicted_mro puts {later} before {earlier}, but {name} lists "
                  f"its bases as ({', '.join(bases)}) and the MRO keeps that order.")
    real = [klass.__name__ for klass in real_class.__mro__]
    check(guess == real,
          "predicted_mro keeps every class before its bases and the bases in "
          "order, yet it is not the merge's answer: redo the merge step by step, "
          "always taking the first head that is in no tail.")


def check_mro_prediction(predicted_mro, predicted_suppliers):
    """Compare a predicted MRO of MRO_QUESTION, and where its names are found, with Python's."""
    real_class = getattr(socketserver, MRO_QUESTION)
    real = [klass.__name__ for klass in real_class.__mro__]

    check(isinstance(predicted_mro, (list, tuple)),
          f"predicted_mro should be a list of class names, from {MRO_QUESTION} "
          f"down to object.")
    require_filled_in(predicted_mro, "predicted_mro")
    check(not any(_is_placeholder(entry) for entry in predicted_mro),
          "fill in the ... in predicted_mro first.")
    guess = [_name_of(entry) for entry in predicted_mro]
    check(all(isinstance(entry, str) for entry in guess),
          "each entry of predicted_mro should be a class name in quotes, such "
          "as 'object'.")
    for name in guess:
        check(name in real,
              f"{name!r} is not a class that {MRO_QUESTION} inherits from: "
              f"check the spelling, and its bases.")
    for name in guess:
        check(guess.count(name) == 1,
              f"{name} appears {guess.count(name)} times in predicted_mro, but the "
              f"MRO lists each class once.")
    check(guess[0] == MRO_QUESTION,
          f"an MRO starts with the class itself, {MRO_QUESTION}.")
    check(len(guess) == len(real),
          f"predicted_mro leaves out a class that {MRO_QUESTION} inherits from: "
          f"every ancestor appears once, down to object.")
    _check_mro_order(guess, real_class)

    check(isinstance(predicted_suppliers, dict),
          "predicted_suppliers should be a dict from attribute name to the name "
          "of the class that supplies it.")
    require_filled_in(predicted_suppliers, "predicted_suppliers")
    for name in SUPPLIER_QUESTIONS:
        check(name in predicted_suppliers,
              f"predicted_suppliers has no answer for {name!r}.")
        check(not _is_placeholder(predicted_suppliers[name]),
              "fill in the ... in predicted_suppliers first.")
    for name in SUPPLIER_QUESTIONS:
        got = _name_of(predicted_suppliers[name])
        check(got in real,
              f"your answer for {name}, {got!r}, is not on the MRO of "
              f"{MRO_QUESTION}, so Python never looks there.")
        defines = name in vars(real_class.__mro__[real.index(got)])
        check(defines,
              f"your answer for {name}, {got}, does not define {name} in its own "
              f"body, so the lookup goes on past it.")
        check(got == supplier(real_class, name),
              f"your answer for {name}, {got}, does define it, but so does a class "
              f"before it on the MRO, and the lookup stops at the first.")
    passed(f"the MRO of {MRO_QUESTION} and where its {len(SUPPLIER_QUESTIONS)} "
           f"names are found")


# -- Exercise 2: which thread logs? --------------------------------------------------


class LoggingMixIn:
    """Note which thread runs process_request, then let the next class on the MRO do its work."""

    def __init__(self, *args, **kwargs):
        self.log = []  # one list per server: the threads that ran process_request
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        self.log.append(threading.current_thread())
        super().process_request(request, client_address)


#: The three classes of exercise 2, by name: their bases, in order.
LOG_ORDERS = {
    "LogThreadTCP": ("LoggingMixIn", "ThreadingMixIn", "TCPServer"),
    "ThreadLogTCP": ("ThreadingMixIn", "LoggingMixIn", "TCPServer"),
    "LogTCPThread": ("LoggingMixIn", "TCPServer", "ThreadingMixIn"),
}

#: Where a line of code can run, as exercise 2 asks: in the thread that runs
#: serve_forever(), in a thread started for the request, or not at all.
PLACES = ("serving thread", "new thread", "nowhere")


def _log_class(impl, order):
    """The server class for one entry of LOG_ORDERS, on impl, noting its serving thread."""
    bases = tuple(LoggingMixIn if name == "LoggingMixIn" else getattr(impl, name)
                  for name in LOG_ORDERS[order])

    class Observed(type(order, bases, {})):
        def serve_forever(self, *args, **kwargs):
            self.loop_thread = threading.current_thread()
            return super().serve_forever(*args, **kwargs)

    return Observed


def observe_log_order(impl, order):
    """Serve one request with LOG_ORDERS[order] on impl; return {"log": place, "handle": place}."""
    handled = []

    class Reply(impl.StreamRequestHandler):
        timeout = CLIENT_TIMEOUT  # a silent client cannot keep a thread for ever

        def handle(self):
            handled.append(threading.current_thread())
            self.rfile.readline()
            self.wfile.write(b"ok\n")

    server = _log_class(impl, order)(harness.LOCALHOST, Reply)
    with harness.serving(server, stop_timeout=STOP_TIMEOUT):
        reply = harness.talk(server.server_address, b"hello\n", timeout=CLIENT_TIMEOUT)

    def place(threads):
        if not threads:
            return "nowhere"
        return "serving thread" if threads[0] is server.loop_thread else "new thread"

    if reply != b"ok\n":
        raise RuntimeError(f"{order} on {impl.__name__} replied {reply!r}")
    return {"log": place(server.log), "handle": place(handled)}


def check_log_prediction(predicted):
    """Compare predicted places of the log line and of handle() with a real server's."""
    check(isinstance(predicted, dict),
          "predicted should be a dict from class name to a dict with 'log' and "
          "'handle'.")
    require_filled_in(predicted, "predicted")
    for order in LOG_ORDERS:
        check(order in predicted, f"predicted has no entry for {order}.")
        answer = predicted[order]
        check(isinstance(answer, dict) and set(answer) == {"log", "handle"},
              f"predicted[{order!r}] should be a dict with the keys 'log' and "
              f"'handle'.")
        check(not any(_is_placeholder(value) for value in answer.values()),
              "fill in the ... in predicted first.")
        for value in answer.values():
            check(value in PLACES,
                  f"{value!r} is not one of {', '.join(map(repr, PLACES))}.")
    wrong = [order for order in LOG_ORDERS
             if predicted[order] != observe_log_order(socketserver, order)]
    more = f" (and for {len(wrong) - 1} more)" if len(wrong) > 1 else ""
    check(not wrong,
          f"a real server did not do what you predicted for "
          f"{wrong[0] if wrong else ''}{more}: walk its MRO from the first "
          f"process_request, and ask of each one whether it calls super() and "
          f"which thread runs it.")
    passed(f"where the log line and handle() run, for all {len(LOG_ORDERS)} "
           f"base orders")


# -- Exercise 3: a mix-in that counts, in either order -------------------------------

#: The attribute in which the learner's mix-in keeps its count.
COUNTER_ATTRIBUTE = "request_count"


def _bases_text(bases):
    return "(" + ", ".join(base.__name__ for base in bases) + ")"


def _counter_class(mixin, impl, first):
    """(description of the bases, a quiet server class) with mixin before or after ThreadingMixIn."""
    if first:
        bases = (mixin, impl.ThreadingMixIn, impl.TCPServer)
    else:
        bases = (impl.ThreadingMixIn, mixin, impl.TCPServer)
    where = _bases_text(bases)
    try:
        server_class = type("CountingServer", bases, {})
    except TypeError:
        raise ExerciseFailed(
            f"Python cannot build a class with the bases {where} (no consistent "
            f"MRO): a mix-in should inherit from object only.") from None

    class Guarded(harness.recording_errors(server_class)):
        def verify_request(self, request, client_address):
            # An exception here would end serve_forever() and leave the
            # request open; record it like a handler's error and refuse the
            # request, which closes it.
            try:
                return super().verify_request(request, client_address)
            except Exception as error:
                self.errors.append((client_address, error))
                return False

    return where, Guarded


def _new_servers(server_class, handler_class, where, count=2):
    """count servers of server_class on port 0, each checked to own a bound socket."""
    servers = []
    try:
        for _ in range(count):
            try:
                server = server_class(harness.LOCALHOST, handler_class)
            except Exception as error:
                raise ExerciseFailed(
                    f"creating a server with the bases {where} raised "
                    f"{describe_error(error)}.") from None
            if getattr(server, "socket", None) is None:
                raise ExerciseFailed(
                    f"a server with the bases {where} has no socket: an __init__ "
                    f"in a mix-in must call super().__init__ with the server's "
                    f"arguments.")
            servers.append(server)
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    return servers


def _exchange(address, line):
    """The bytes a client gets back for one line, or None if the connection failed."""
    try:
        return harness.talk(address, line, timeout=CLIENT_TIMEOUT)
    except OSError:
        return None  # refused, reset or timed out: the request got no reply


def _requests(one, other):
    """The requests of the counter check: two for one server, one for the other."""
    return ((one, b"a\n"), (one, b"b\n"), (other, b"c\n"))


def _run_counter(mixin, impl, first):
    """Serve 2 requests on one server and 1 on another; fail with a sentence on a wrong count."""
    where, server_class = _counter_class(mixin, impl, first)

    class Reply(impl.StreamRequestHandler):
        timeout = CLIENT_TIMEOUT  # a silent client cannot keep a thread for ever

        def handle(self):
            self.wfile.write(self.rfile.readline())

    one, other = _new_servers(server_class, Reply, where)
    with one, other:
        for server in (one, other):
            start = getattr(server, COUNTER_ATTRIBUTE, None)
            check(start is not None,
                  f"a new server with the bases {where} has no {COUNTER_ATTRIBUTE}: "
                  f"give each server its count, 0, when it is created.")
            check(start == 0,
                  f"a new server with the bases {where} starts with "
                  f"{COUNTER_ATTRIBUTE} == {start!r}: each server needs its own "
                  f"count, starting at 0.")
        try:
            with harness.serving(one, stop_timeout=STOP_TIMEOUT), \
                 harness.serving(other, stop_timeout=STOP_TIMEOUT):
                replies = []
                for server, line in _requests(one, other):
                    replies.append((line, _exchange(server.server_address, line)))
                    if replies[-1][1] != line:
                        break  # one lost request is enough: do not wait for more
        except harness.TimedOut:
            raise ExerciseFailed(
                f"a server with the bases {where} did not stop within "
                f"{STOP_TIMEOUT:g} s, so your mix-in waits for something "
                f"that never happens.") from None
        except Exception as error:  # serve_forever() itself stopped with it
            raise ExerciseFailed(
                f"serve_forever() of a server with the bases {where} stopped with "
                f"{describe_error(error)}.") from None
    errors = one.errors + other.errors
    check(not errors,
          f"with the bases {where}, your mix-in raised "
          f"{describe_error(errors[0][1]) if errors else ''} while the server "
          f"handled a request.")
    sent, got = replies[-1]
    check(got == sent,
          f"with the bases {where}, a client sent {sent!r} and got "
          f"{'no reply' if not got else repr(got) + ' back'}: an override must go on to the next class (super()) and "
          f"return what that returns.")
    counts = (getattr(one, COUNTER_ATTRIBUTE, None), getattr(other, COUNTER_ATTRIBUTE, None))
    check(counts == (2, 1),
          f"with the bases {where}, a server that received 2 requests counted "
          f"{counts[0]!r} and one that received 1 counted {counts[1]!r}: "
          + ("each server needs its own count." if counts == (3, 3) else
             "find a hook that every request passes through, whichever side of "
             "ThreadingMixIn the mix-in is."))


def check_request_counter(mixin):
    """Check a mix-in that counts requests in self.request_count, before or after ThreadingMixIn."""
    check(inspect.isclass(mixin),
          "pass the mix-in class itself, not an instance or a string.")
    require_filled_in(mixin)
    server_bases = (socketserver.BaseServer, sockserv.BaseServer)
    check(not issubclass(mixin, server_bases),
          f"{mixin.__name__} is a server class: a mix-in inherits from object "
          f"only, and the server class comes last in the bases.")
    for impl in harness.IMPLEMENTATIONS.values():
        for first in (True, False):
            _run_counter(mixin, impl, first)
    passed(f"{mixin.__name__} counted every request on its own server, before "
           f"and after ThreadingMixIn, on both implementations")

