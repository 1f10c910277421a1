"""The lesson helpers: what the notebooks print must come from real behaviour."""

import socket
import socketserver
import threading

import pytest

import sockserv
from sockserv.teach import checks, diagram, serving, trace
from sockserv.teach.mermaid import MermaidDiagram

IMPLEMENTATIONS = [pytest.param(socketserver, id="stdlib"),
                   pytest.param(sockserv, id="sockserv")]


def echo_line_handler(impl):
    class EchoLine(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())
    return EchoLine


def one_round_trip(address):
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(b"ping\n")
        reply = client.makefile("rb").readline()
        # Waiting for EOF makes the trace causal: the server has run
        # shutdown_request before the test goes on to shut it down.
        assert client.recv(1) == b""
    return reply


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("server_name", ["TCPServer", "ThreadingTCPServer"])
def test_traced_server_records_every_hook_in_order(impl, server_name):
    recorder = trace.Recorder()
    server_class = trace.traced(getattr(impl, server_name), recorder)
    handler_class = trace.traced(echo_line_handler(impl), recorder)
    with serving.serving(server_class(("127.0.0.1", 0), handler_class)) as server:
        assert one_round_trip(server.server_address) == b"ping\n"
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


def test_serving_closes_the_server_even_when_the_block_raises():
    server = sockserv.TCPServer(("127.0.0.1", 0), sockserv.BaseRequestHandler)
    with pytest.raises(RuntimeError):
        with serving.serving(server):
            raise RuntimeError("boom")
    assert server.socket.fileno() == -1


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


def test_a_class_whose_source_cannot_be_read_is_judged_by_its_methods():
    # As in Jupyter before Python 3.13: inspect.getsource(cls) fails, but the
    # methods' source (from this file) can still be read.
    handler = type("MadeByType", (sockserv.BaseRequestHandler,),
                   {"handle": StarterHandler.handle})
    assert checks._source_has_ellipsis(handler) is None
    with pytest.raises(checks.ExerciseFailed, match="in MadeByType first"):
        checks.require_filled_in(handler)
