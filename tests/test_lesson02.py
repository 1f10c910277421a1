"""Lesson 02's exercise checks: they pass on the worked solutions, in both
implementations, and fail with one sentence on the typical wrong answers.

The leak guard in conftest.py also checks that no check leaves a thread, a
child process or a socket behind; the tests here add the socket files.
"""

import glob
import os
import socketserver
import tempfile

import pytest

import sockserv
from sockserv.teach import lesson02
from sockserv.teach.checks import ExerciseFailed

IMPLEMENTATIONS = [pytest.param(socketserver, id="stdlib"),
                   pytest.param(sockserv, id="sockserv")]

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


@pytest.fixture(autouse=True)
def no_socket_files_left():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lesson02-*")))
    yield
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "lesson02-*")))
    assert after == before, "a check left its socket directory behind"


def fails_with(call, *args, **kwargs):
    """Run a check that must fail; return its message, checked to be one sentence."""
    with pytest.raises(ExerciseFailed) as failure:
        call(*args, **kwargs)
    message = str(failure.value)
    assert "\n" not in message and message.endswith("."), message
    assert message.count(". ") == 0, message
    return message


# -- exercise 1 -------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_the_expected_answers_are_what_python_does(impl):
    cls = getattr(impl, lesson02.MRO_QUESTION)
    assert [c.__name__ for c in cls.__mro__] == RIGHT_MRO
    assert {name: lesson02.supplier(cls, name)
            for name in lesson02.SUPPLIER_QUESTIONS} == RIGHT_SUPPLIERS


def test_mro_prediction_passes_on_the_solution(capsys):
    lesson02.check_mro_prediction(RIGHT_MRO, dict(RIGHT_SUPPLIERS))
    assert capsys.readouterr().out.startswith("Check passed:")


def test_mro_prediction_accepts_classes_as_well_as_names(capsys):
    classes = list(socketserver.ThreadingUnixDatagramServer.__mro__)
    lesson02.check_mro_prediction(classes, dict(RIGHT_SUPPLIERS))
    assert capsys.readouterr().out.startswith("Check passed:")


def test_mro_prediction_fails_when_a_class_is_skipped():
    skipped_udp = [n for n in RIGHT_MRO if n != "UDPServer"]
    message = fails_with(lesson02.check_mro_prediction, skipped_udp, RIGHT_SUPPLIERS)
    assert "position 4" in message and "'UDPServer'" in message


def test_mro_prediction_fails_when_object_is_forgotten():
    message = fails_with(lesson02.check_mro_prediction, RIGHT_MRO[:-1], RIGHT_SUPPLIERS)
    assert "object" in message


def test_mro_prediction_fails_on_a_wrong_supplier():
    wrong = dict(RIGHT_SUPPLIERS, get_request="TCPServer")
    message = fails_with(lesson02.check_mro_prediction, RIGHT_MRO, wrong)
    assert "get_request is found on UDPServer, not on TCPServer" in message


def test_mro_prediction_fails_on_a_missing_supplier():
    missing = {k: v for k, v in RIGHT_SUPPLIERS.items() if k != "socket_type"}
    message = fails_with(lesson02.check_mro_prediction, RIGHT_MRO, missing)
    assert "'socket_type'" in message


def test_mro_prediction_fails_on_the_starter():
    fails_with(lesson02.check_mro_prediction,
               ["ThreadingUnixDatagramServer", "?"], {"process_request": "?"})


# -- exercise 2 -------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_threading_unix_stream_passes_on_the_solution(impl, capsys):
    class MyThreadingUnixStreamServer(impl.ThreadingMixIn, impl.UnixStreamServer):
        pass
    lesson02.check_threading_unix_stream_server(MyThreadingUnixStreamServer)
    assert capsys.readouterr().out.startswith("Check passed:")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_threading_unix_stream_fails_with_the_bases_reversed(impl):
    class Backwards(impl.UnixStreamServer, impl.ThreadingMixIn):
        pass
    # A short patience: the wrong answer always waits it out in full.
    message = fails_with(lesson02.check_threading_unix_stream_server, Backwards,
                         patience=0.2)
    assert "no reply while the first was still connected" in message
    assert "comes from BaseServer" in message and "mix-in first" in message


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_threading_unix_stream_fails_without_a_mixin(impl):
    class NoMixin(impl.UnixStreamServer):
        pass
    message = fails_with(lesson02.check_threading_unix_stream_server, NoMixin,
                         patience=0.2)
    assert "one client at a time" in message


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_threading_unix_stream_fails_on_the_wrong_server(impl):
    class OnTCP(impl.ThreadingMixIn, impl.TCPServer):
        pass
    class OnUnixDatagram(impl.ThreadingMixIn, impl.UnixDatagramServer):
        pass
    assert "needs AF_UNIX" in fails_with(
        lesson02.check_threading_unix_stream_server, OnTCP)
    assert "needs SOCK_STREAM" in fails_with(
        lesson02.check_threading_unix_stream_server, OnUnixDatagram)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_threading_unix_stream_refuses_the_ready_made_class_and_forking(impl):
    assert "ready-made" in fails_with(
        lesson02.check_threading_unix_stream_server, impl.ThreadingUnixStreamServer)

    class Forking(impl.ForkingMixIn, impl.UnixStreamServer):
        pass
    assert "use ThreadingMixIn" in fails_with(
        lesson02.check_threading_unix_stream_server, Forking)


def test_threading_unix_stream_refuses_what_is_not_a_server_class():
    fails_with(lesson02.check_threading_unix_stream_server, socketserver.ThreadingMixIn)
    fails_with(lesson02.check_threading_unix_stream_server, "ThreadingUnixStreamServer")


# -- exercise 3 -------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_forking_udp_passes_on_the_solution(impl, capsys):
    class MyForkingUDPServer(impl.ForkingMixIn, impl.UDPServer):
        pass
    lesson02.check_forking_udp_server(MyForkingUDPServer)
    assert capsys.readouterr().out.startswith("Check passed:")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_forking_udp_fails_with_the_bases_reversed(impl):
    class Backwards(impl.UDPServer, impl.ForkingMixIn):
        pass
    message = fails_with(lesson02.check_forking_udp_server, Backwards)
    assert "comes from BaseServer" in message and "ForkingMixIn first" in message


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_forking_udp_fails_on_the_wrong_server(impl):
    class OnTCP(impl.ForkingMixIn, impl.TCPServer):
        pass
    class OnUnix(impl.ForkingMixIn, impl.UnixDatagramServer):
        pass
    class Threading(impl.ThreadingMixIn, impl.UDPServer):
        pass
    assert "needs SOCK_DGRAM" in fails_with(lesson02.check_forking_udp_server, OnTCP)
    assert "needs AF_INET" in fails_with(lesson02.check_forking_udp_server, OnUnix)
    assert "use ForkingMixIn" in fails_with(
        lesson02.check_forking_udp_server, Threading)
    assert "ready-made" in fails_with(
        lesson02.check_forking_udp_server, impl.ForkingUDPServer)
