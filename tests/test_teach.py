"""The lesson helpers: what the notebooks print must come from real behaviour."""

import inspect
import linecache
import socket
import socketserver
import threading

import pytest

import sockserv
from sockserv.teach import checks, diagram, harness, serving, trace
from sockserv.teach.mermaid import MermaidDiagram

from helpers import impls

IMPLEMENTATIONS = impls()  # one per harness.IMPLEMENTATIONS entry, ids "stdlib", "sockserv"


def echo_line_handler(impl):
    class EchoLine(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())
    return EchoLine


def one_round_trip(address):
    # Reading to EOF (the client keeps its side open) makes the trace causal:
    # the server has run shutdown_request before the test goes on to shut it down.
    return harness.talk(address, b"ping\n", half_close=False)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("server_name", ["TCPServer", "ThreadingTCPServer"])
def test_traced_server_records_every_hook_in_order(impl, server_name):
    recorder = trace.Recorder()
    server_class = trace.traced(getattr(impl, server_name), recorder)
    handler_class = trace.traced(echo_line_handler(impl), recorder)
    with serving.serving(server_class(("127.0.0.1", 0), handler_class)) as server:
        assert one_round_trip(server.server_address) == b"ping\n"
        # The reply ends at shutdown_request(); under the threading mix-in the
        # handler's thread calls close_request() after that, while this thread
        # would go on to server_close(): wait for it (bounded) to fix the order.
        assert recorder.wait_for("server.close_request", timeout=10)
    assert recorder.events == [
        "server.server_bind", "server.server_activate", "server.get_request",
        "server.verify_request", "server.process_request", "server.finish_request",
        "handler.setup", "handler.handle", "handler.finish",
        "server.shutdown_request", "server.close_request", "server.server_close"]


def test_traced_keeps_behaviour_and_only_wraps_existing_hooks():
    recorder = trace.Recorder()
    traced_udp = trace.traced(sockserv.UDPServer, recorder)
    assert issubclass(traced_udp, sockserv.UDPServer)
    assert traced_udp.max_packet_size == sockserv.UDPServer.max_packet_size
    traced_handler = trace.traced(sockserv.BaseRequestHandler, recorder)
    assert set(vars(traced_handler)) >= {"setup", "handle", "finish"}
    assert "get_request" not in vars(traced_handler)


def test_recorder_is_thread_safe_and_prints_numbered_lines(capsys):
    recorder = trace.Recorder()
    threads = [threading.Thread(target=lambda: [recorder.record("x.y") for _ in range(500)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(recorder.events) == 2000
    recorder.clear()
    recorder.record("server.get_request")
    recorder.print()
    assert capsys.readouterr().out == " 1. server.get_request\n"


def test_recorder_wait_for_returns_once_another_thread_records_the_event():
    recorder = trace.Recorder()
    assert not recorder.wait_for("handler.finish", timeout=0.01)
    recorder.record("handler.setup")
    assert not recorder.wait_for("handler.finish", timeout=0.01)  # another event is not it
    thread = threading.Thread(target=recorder.record, args=("handler.finish",))
    thread.start()
    assert recorder.wait_for("handler.finish", timeout=10)
    thread.join(timeout=10)
    assert recorder.events == ["handler.setup", "handler.finish"]


def test_class_diagrams_of_both_implementations_match():
    # From Python 3.12 the stdlib also has the Forking Unix servers, which
    # sockserv (written against 3.11's API) does not: compare the shared names.
    shared = set(socketserver.__all__) & set(sockserv.__all__)
    assert len(shared) >= 16

    def edges(module):
        return {(b, c) for b, c in diagram.inheritance_edges(module) if c in shared}
    assert edges(socketserver) == edges(sockserv)
    drawn = diagram.class_diagram(sockserv, names=["BaseServer", "TCPServer", "UDPServer"])
    assert drawn.source == ("classDiagram\n    BaseServer <|-- TCPServer\n"
                            "    TCPServer <|-- UDPServer\n")


def test_class_diagram_shows_a_difference_when_there_is_one():
    class Fake:
        class BaseServer: pass
        class TCPServer(BaseServer): pass
        class UDPServer(BaseServer): pass  # not under TCPServer, unlike the real ones
        __all__ = ["BaseServer", "TCPServer", "UDPServer"]
    assert diagram.inheritance_edges(Fake) != diagram.inheritance_edges(sockserv)


def test_sequence_diagram_and_mermaid_display():
    drawn = diagram.sequence_diagram(["client.connect", "server.get_request", "handler.handle"])
    assert "    client->>server: connect" in drawn.source
    assert "    server->>server: get_request()" in drawn.source
    assert "    server->>handler: handle()" in drawn.source
    assert repr(drawn) == drawn.source
    assert drawn._repr_markdown_().startswith("```mermaid\nsequenceDiagram\n")
    assert drawn == MermaidDiagram(drawn.source)


def test_checks_pass_or_fail_with_one_sentence(capsys):
    checks.passed("the handler echoes")
    assert capsys.readouterr().out == "Check passed: the handler echoes\n"
    with pytest.raises(checks.ExerciseFailed, match=r"^expected b'HI', got b'hi'\.$"):
        checks.check(False, "expected b'HI', got b'hi'.")
    checks.check(True, "never raised")


# -- the one-sentence rule: enforced by ExerciseFailed, tested here only ------


@pytest.mark.parametrize("sentence", [
    "handle() sent b'hi' back, expected b'HI'.",
    "the server's reply was b'A. B', expected 'x. Y'.",  # quoted values may hold anything
    "fill in the ... in UpperEchoHandler first.",
    "the handler raised ValueError('bad input. Try again').",
])
def test_exercise_failed_takes_one_sentence(sentence):
    failure = checks.ExerciseFailed(sentence)
    assert str(failure) == sentence
    assert isinstance(failure, AssertionError)
    # IPython shows this instead of a traceback.
    assert failure._render_traceback_() == [f"ExerciseFailed: {sentence}"]


@pytest.mark.parametrize("sentence, problem", [
    ("", "it is empty"),
    ("   ", "it is empty"),
    ("the reply was wrong.\nexpected b'HI'.", "it has a line break"),
    ("the reply was wrong", "it does not end with a full stop"),
    ("the reply was wrong!", "it does not end with a full stop"),
    ("the reply was wrong. Send it upper-cased.", "a second sentence follows"),
    ('Traceback (most recent call last): File "x.py", line 3.', "looks like a traceback"),
    ('failed in File "/home/me/check.py", line 12.', "looks like a traceback"),
])
def test_exercise_failed_refuses_what_is_not_one_sentence(sentence, problem):
    with pytest.raises(ValueError, match="a mistake in the check") as caught:
        checks.ExerciseFailed(sentence)
    assert problem in str(caught.value)


@pytest.mark.parametrize("not_text", [None, b"bytes.", ["a list."]])
def test_exercise_failed_refuses_what_is_not_text(not_text):
    with pytest.raises(TypeError, match="a mistake in the check"):
        checks.ExerciseFailed(not_text)


def test_learner_text_is_quoted_so_it_cannot_break_the_rule():
    error = RuntimeError("first line. Second sentence\n  and a second line")
    phrase = checks.describe_error(error)
    assert phrase == "RuntimeError('first line. Second sentence')"
    checks.ExerciseFailed(f"the handler raised {phrase}.")
    assert checks.describe_error(KeyError()) == "KeyError"
    assert len(checks.describe_error(ValueError("x" * 500))) < 100
    assert checks.preview(b"short") == "b'short'"
    assert checks.preview(b"x" * 50, limit=4) == "b'xxxx' (and 46 more)"


# -- the placeholder rule -------------------------------------------------------


def starter_function(conn):
    ...


def unchanged(function):
    return function


@unchanged
def decorated_starter(data):
    ...


def starter_returning_placeholder(data):
    return ...


def filled_in_function(data):
    return data.upper()


class StarterHandler(sockserv.BaseRequestHandler):
    def handle(self):
        ...


class StarterServer(sockserv.TCPServer):
    limit = ...


class StarterWithProperty:
    @property
    def size(self):
        return ...


class FilledInHandler(sockserv.BaseRequestHandler):
    """Uses ... only in this docstring, which is not a placeholder."""

    def handle(self):
        self.request.sendall(self.request.recv(10).upper())


@pytest.mark.parametrize("answer, name", [
    (starter_function, "starter_function"),
    (starter_returning_placeholder, "starter_returning_placeholder"),
    (StarterHandler, "StarterHandler"),
    (StarterHandler.handle, "handle"),
    (StarterServer, "StarterServer"),
    (StarterWithProperty, "StarterWithProperty"),
])
def test_a_placeholder_left_in_code_asks_to_fill_it_in(answer, name):
    with pytest.raises(checks.ExerciseFailed, match=rf"^fill in the \.\.\. in {name} first\.$"):
        checks.require_filled_in(answer)


def test_a_placeholder_left_in_a_value_asks_to_fill_it_in():
    with pytest.raises(checks.ExerciseFailed, match=r"^fill in the \.\.\. in predicted_mro first\.$"):
        checks.require_filled_in(["ThreadingUnixDatagramServer", ...], "predicted_mro")
    with pytest.raises(checks.ExerciseFailed, match="in predicted_suppliers first"):
        checks.require_filled_in({"process_request": ...}, "predicted_suppliers")
    with pytest.raises(checks.ExerciseFailed, match="in your answer first"):
        checks.require_filled_in(...)


@pytest.mark.parametrize("answer", [filled_in_function, FilledInHandler,
                                    ["TCPServer", "BaseServer"], 42, None])
def test_a_filled_in_answer_goes_on_to_be_checked(answer):
    checks.require_filled_in(answer, "answer")


def test_without_source_the_compiled_code_still_shows_a_placeholder():
    namespace = {}
    exec("def assigns(x):\n    y = ...\n    return y\n"
         "def bare(x):\n    ...\n", namespace)
    assert checks._source_has_ellipsis(namespace["assigns"]) is None
    with pytest.raises(checks.ExerciseFailed, match="in assigns first"):
        checks.require_filled_in(namespace["assigns"])
    # A bare `...` statement compiles to nothing: without source it cannot be
    # seen, and the check goes on to judge what the code does (documented).
    checks.require_filled_in(namespace["bare"])


def test_source_that_is_not_the_answers_own_is_not_read():
    # linecache may hold other text under the name the code was compiled with:
    # Python 3.13 keeps `python -c`'s code as "<string>", exec()'s default name.
    filename = "<test_teach: someone else's source>"
    linecache.cache[filename] = (20, None, ["import sys; print(1)\n"], filename)
    try:
        namespace = {}
        exec(compile("def assigns(x):\n    y = ...\n    return y\n"
                     "def bare(x):\n    ...\n", filename, "exec"), namespace)
        assert inspect.getsource(namespace["assigns"]) == "import sys; print(1)\n"
        assert checks._source_has_ellipsis(namespace["assigns"]) is None
        with pytest.raises(checks.ExerciseFailed, match="in assigns first"):
            checks.require_filled_in(namespace["assigns"])
        checks.require_filled_in(namespace["bare"])  # as without source (see above)
    finally:
        del linecache.cache[filename]


def test_a_lambda_and_a_decorated_function_are_read_from_their_source():
    starter = lambda data: ...  # noqa: E731 (a learner may write one)
    assert checks._source_has_ellipsis(starter) is True
    assert checks._source_has_ellipsis(decorated_starter) is True
    with pytest.raises(checks.ExerciseFailed, match="in decorated_starter first"):
        checks.require_filled_in(decorated_starter)


def test_a_class_whose_source_cannot_be_read_is_judged_by_its_methods():
    # As in Jupyter before Python 3.13: inspect.getsource(cls) fails, but the
    # methods' source (from this file) can still be read.
    handler = type("MadeByType", (sockserv.BaseRequestHandler,),
                   {"handle": StarterHandler.handle})
    assert checks._source_has_ellipsis(handler) is None
    with pytest.raises(checks.ExerciseFailed, match="in MadeByType first"):
        checks.require_filled_in(handler)


# -- nesting: the timeline and the nested sequence diagram ---------------------------

SYNC_REQUEST_NESTED = """sequenceDiagram
    participant client
    participant server
    participant handler
    server->>+server: __init__()
    server->>server: server_bind()
    server->>server: server_activate()
    deactivate server
    client->>server: connect
    server->>+server: serve_forever()
    server->>server: get_request()
    server->>server: verify_request()
    server->>+server: process_request()
    server->>+server: finish_request()
    server->>+handler: __init__()
    handler->>handler: setup()
    handler->>handler: handle()
    handler->>handler: finish()
    deactivate handler
    deactivate server
    server->>+server: shutdown_request()
    server->>server: close_request()
    deactivate server
    deactivate server
    deactivate server
    server->>server: server_close()
"""


def traced_round_trip(impl, server_name="TCPServer"):
    recorder = trace.Recorder()
    server_class = trace.traced(getattr(impl, server_name), recorder)
    server = server_class(("127.0.0.1", 0), trace.traced(echo_line_handler(impl), recorder))
    with serving.serving(server):  # closes the server, once
        recorder.record("client.connect")
        assert one_round_trip(server.server_address) == b"ping\n"
    return recorder


def activation_depths(source):
    """Per participant, the activation depth after each line; fails on a stray deactivate."""
    depth = {}
    for line in source.splitlines():
        line = line.strip()
        if "->>+" in line:
            who = line.split("->>+")[1].split(":")[0]
            depth[who] = depth.get(who, 0) + 1
        elif line.startswith("deactivate "):
            who = line.split()[1]
            depth[who] = depth.get(who, 0) - 1
            assert depth[who] >= 0, line
    return depth


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_nested_diagram_of_a_sync_request_shows_who_calls_whom(impl):
    recorder = traced_round_trip(impl)
    drawn = diagram.nested_sequence_diagram(recorder)
    assert drawn.source == SYNC_REQUEST_NESTED
    assert repr(drawn) == drawn.source  # text/plain, what nbval compares
    assert set(activation_depths(drawn.source).values()) == {0}
    # The frames are for the nesting only: the flat events are unchanged.
    assert "server.serve_forever" not in recorder.events
    assert recorder.events[:3] == ["server.server_bind", "server.server_activate", "client.connect"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_handle_request_is_a_frame_and_a_timeout_is_nested_in_it(impl):
    recorder = trace.Recorder()
    server_class = trace.traced(impl.TCPServer, recorder)
    with server_class(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        server.timeout = 0.01
        server.handle_request()
    source = diagram.nested_sequence_diagram(recorder).source
    assert ("    server->>+server: handle_request()\n"
            "    server->>server: handle_timeout()\n"
            "    deactivate server\n") in source


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_nested_diagram_of_a_threading_server_stays_balanced(impl):
    recorder = traced_round_trip(impl, "ThreadingTCPServer")
    source = diagram.nested_sequence_diagram(recorder).source
    assert set(activation_depths(source).values()) == {0}
    # The handler thread's first traced call has no caller in its thread.
    assert "    server->>+server: finish_request()\n    server->>+handler: __init__()" in source


def test_timeline_records_returns_even_when_a_hook_raises():
    recorder = trace.Recorder()

    class Fails(sockserv.BaseRequestHandler):
        def handle(self):
            raise ValueError("on purpose")

    traced_handler = trace.traced(Fails, recorder)
    with pytest.raises(ValueError):
        traced_handler(None, None, None)
    assert [(step.kind, step.event, step.frame) for step in recorder.timeline] == [
        ("call", "handler.__init__", True), ("call", "handler.setup", False),
        ("return", "handler.setup", False), ("call", "handler.handle", False),
        ("return", "handler.handle", False), ("call", "handler.finish", False),
        ("return", "handler.finish", False), ("return", "handler.__init__", True)]
    assert recorder.events == ["handler.setup", "handler.handle", "handler.finish"]
    assert {step.thread for step in recorder.timeline} == {0}


def test_nested_diagram_from_a_hand_made_timeline():
    Step = trace.Step
    timeline = [Step("return", "server.stray", 0, False),     # before the recording began
                Step("call", "worker.run", 1, False),
                Step("event", "worker.tick", 1, False),
                Step("event", "client.hello", 0, False),
                Step("return", "worker.run", 1, False)]
    assert diagram.nested_sequence_diagram(timeline, participants=("client",)).source == (
        "sequenceDiagram\n    participant client\n    participant server\n"
        "    participant worker\n    worker->>+worker: run()\n    worker->>worker: tick()\n"
        "    client->>server: hello\n    deactivate worker\n")


# -- the hierarchy in readable parts -------------------------------------------------


def test_a_family_is_one_class_with_its_neighbours():
    names = diagram.family(socketserver, "TCPServer")
    assert {"BaseServer", "TCPServer", "UDPServer", "ThreadingTCPServer",
            "ThreadingMixIn"} <= set(names)
    assert "ThreadingUDPServer" not in names  # built on UDPServer: another family
    assert names == sorted(names)
    assert ("ThreadingMixIn", "ThreadingTCPServer") in {
        tuple(line.strip().split(" <|-- ")) for line in
        diagram.class_diagram(socketserver, names).source.strip().splitlines()[1:]}
    assert diagram.family(sockserv, "UDPServer") == diagram.family(socketserver, "UDPServer")


def test_mixin_table_is_built_from_the_classes():
    table = diagram.mixin_table(socketserver)
    assert table.columns[:3] == ["mix-in \\ server", "TCPServer", "UDPServer"]
    assert table.cell("ThreadingMixIn", "TCPServer") == "ThreadingTCPServer"
    assert table.cell("ThreadingMixIn", "UDPServer") == "ThreadingUDPServer"
    if hasattr(socketserver, "ForkingMixIn") and hasattr(socketserver, "UnixStreamServer"):
        # Python 3.12 added the forking Unix servers: the table says what this Python has.
        expected = getattr(socketserver, "ForkingUnixStreamServer", None)
        assert table.cell("ForkingMixIn", "UnixStreamServer") == (
            "ForkingUnixStreamServer" if expected else diagram.NO_CLASS)
    assert diagram.mixin_table(sockserv) == table
    text = repr(table)
    assert text.splitlines()[1].split()[:2] in (["ForkingMixIn", "ForkingTCPServer"],
                                                ["ThreadingMixIn", "ThreadingTCPServer"])
    page = table._repr_html_()
    assert page.startswith("<table><thead><tr><th>mix-in \\ server</th><th>TCPServer</th>")
    assert "<td>ThreadingTCPServer</td>" in page


def test_mixin_table_shows_what_a_module_lacks():
    class Fake:
        class BaseServer: address_family, socket_type = socket.AF_INET, socket.SOCK_STREAM
        class TCPServer(BaseServer): pass
        class UDPServer(TCPServer): socket_type = socket.SOCK_DGRAM
        class ThreadingMixIn: pass
        class LoggingMixIn: pass
        class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass
        class LoggingUDPServer(LoggingMixIn, UDPServer): pass
        class Reversed(UDPServer, ThreadingMixIn): pass  # not a mix-in x server class
        __all__ = ["BaseServer", "UDPServer", "TCPServer", "ThreadingMixIn", "LoggingMixIn",
                   "ThreadingTCPServer", "LoggingUDPServer", "Reversed"]
        __name__ = "fake"

    table = diagram.mixin_table(Fake)
    assert table.rows == [["LoggingMixIn", diagram.NO_CLASS, "LoggingUDPServer"],
                          ["ThreadingMixIn", "ThreadingTCPServer", diagram.NO_CLASS]]
    assert repr(table) == ("mix-in \\ server  TCPServer           UDPServer\n"
                           "LoggingMixIn     —                   LoggingUDPServer\n"
                           "ThreadingMixIn   ThreadingTCPServer  —\n")
    assert "&lt;" in diagram.Table(["a", "b"], [["<x>", "y"]])._repr_html_()
    with pytest.raises(ValueError):
        diagram.mixin_table(socket)
    with pytest.raises(ValueError):
        diagram.Table(["a", "b"], [["only one"]])
