"""The checks of lesson 02's exercises: the class hierarchy.

Each check takes what the learner wrote (a prediction, or a class built
from a mix-in and a server) and either prints one "Check passed" line or
raises ``ExerciseFailed`` with one sentence saying what is wrong.  A class
is judged by what it does, not by how it is spelled: the lookups Python
really makes along its MRO, and a real server on 127.0.0.1 port 0 or in a
temporary directory, with timeouts on every socket so a wrong answer fails
fast instead of hanging.

Classes from either implementation are accepted: a class built on stdlib
``socketserver`` is served with stdlib handlers, one built on ``sockserv``
with sockserv's.
"""

import os
import socket
import socketserver
import tempfile

import sockserv

from .checks import ExerciseFailed, check, passed
from .serving import serving

__all__ = ["supplier", "MRO_QUESTION", "SUPPLIER_QUESTIONS",
           "check_mro_prediction", "check_threading_unix_stream_server",
           "check_forking_udp_server"]

# Exercise 1 asks about this class; its stdlib and sockserv versions agree.
MRO_QUESTION = "ThreadingUnixDatagramServer"
SUPPLIER_QUESTIONS = ("process_request", "server_close", "get_request",
                      "server_activate", "finish_request", "address_family",
                      "socket_type")

# Seconds a client waits for a reply that a concurrent server sends at once
# and a one-at-a-time server cannot send at all: waiting proves only the
# second case, so it is kept short, yet far above a thread's start-up time.
PATIENCE = 1.5
# Seconds for everything that must happen: a wrong answer fails, never hangs.
DEADLINE = 5.0


def supplier(cls, name):
    """The name of the first class on cls's MRO that defines name, or None."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__name__
    return None


def _implementation(server_class):
    """The module (sockserv or socketserver) a server class is built on."""
    check(isinstance(server_class, type)
          and issubclass(server_class, (socketserver.BaseServer,
                                        sockserv.BaseServer)),
          f"{server_class!r} is not a server class: pass the class itself, "
          f"built from a mix-in and a server class.")
    if issubclass(server_class, sockserv.BaseServer):
        return sockserv
    return socketserver


def _family_name(value):
    return getattr(value, "name", str(value))


# -- Exercise 1: predict the lookups -----------------------------------------

def check_mro_prediction(predicted_mro, predicted_suppliers):
    """Compare a predicted MRO and predicted suppliers with Python's own."""
    real = getattr(socketserver, MRO_QUESTION)
    mro = [klass.__name__ for klass in real.__mro__]
    check(isinstance(predicted_mro, (list, tuple)),
          f"predicted_mro should be a list of class names, from "
          f"{MRO_QUESTION} down to object.")
    guess = [g.__name__ if isinstance(g, type) else g for g in predicted_mro]
    for position, (got, want) in enumerate(zip(guess, mro), 1):
        check(got == want,
              f"position {position} of your MRO is {got!r}, but Python "
              f"looks in {want!r} there.")
    check(len(guess) == len(mro),
          f"your MRO lists {len(guess)} classes but Python's has {len(mro)}: "
          f"go on until object.")

    check(isinstance(predicted_suppliers, dict),
          "predicted_suppliers should be a dict from attribute name to the "
          "name of the class that supplies it.")
    for name in SUPPLIER_QUESTIONS:
        check(name in predicted_suppliers,
              f"predicted_suppliers has no answer for {name!r}.")
        got = predicted_suppliers[name]
        got = got.__name__ if isinstance(got, type) else got
        want = supplier(real, name)
        check(got == want,
              f"{MRO_QUESTION}.{name} is found on {want}, not on {got}.")
    passed(f"the MRO of {MRO_QUESTION} and where its "
           f"{len(SUPPLIER_QUESTIONS)} attributes come from")


# -- Exercise 2: a threading Unix stream server, built by hand ---------------

def _read_line(sock):
    """Receive until a newline or EOF (one recv() is not one message)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def _connect_unix(path):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(DEADLINE)
    try:
        client.connect(path)
    except BaseException:
        client.close()
        raise
    return client


def _second_client_served_early(server_class, handler_class, path, patience):
    """Run two clients; return (first reply, second reply or None while first connected)."""
    with serving(server_class(path, handler_class)):
        with _connect_unix(path) as first, _connect_unix(path) as second:
            first.sendall(b"first\n")
            first_reply = _read_line(first)  # first's handler is now running
            second.sendall(b"second\n")
            second.settimeout(patience)
            try:
                early = _read_line(second)
            except TimeoutError:
                early = None
            # The first client leaves; a one-at-a-time server now gets to
            # the second, so every handler ends before the server closes.
            first.shutdown(socket.SHUT_WR)
            second.settimeout(DEADLINE)
            if early is None:
                _read_line(second)
            second.shutdown(socket.SHUT_WR)
            # Wait for EOF: both handlers have finished.
            check(first.recv(1) == b"" and second.recv(1) == b"",
                  "the server did not close the connections after the "
                  "clients left.")
    return first_reply, early


def check_threading_unix_stream_server(server_class, patience=PATIENCE):
    """Check a hand-built ThreadingUnixStreamServer: a Unix stream server that serves clients at once."""
    impl = _implementation(server_class)
    name = server_class.__name__
    ready_made = {getattr(module, "ThreadingUnixStreamServer", None)
                  for module in (socketserver, sockserv)}
    check(server_class not in ready_made,
          "that is the ready-made ThreadingUnixStreamServer: build your own "
          "class from a mix-in and a server class.")
    check(server_class.address_family == socket.AF_UNIX,
          f"{name}.address_family is "
          f"{_family_name(server_class.address_family)}, but a Unix server "
          f"needs AF_UNIX: build it on UnixStreamServer.")
    check(server_class.socket_type == socket.SOCK_STREAM,
          f"{name}.socket_type is {_family_name(server_class.socket_type)}, "
          f"but a stream server needs SOCK_STREAM: build it on "
          f"UnixStreamServer.")
    check(supplier(server_class, "process_request") != "ForkingMixIn",
          "this exercise is about threads: use ThreadingMixIn, not "
          "ForkingMixIn.")

    class ShoutLines(impl.StreamRequestHandler):
        timeout = DEADLINE  # a stuck client cannot hold a handler forever

        def handle(self):
            for line in self.rfile:
                self.wfile.write(line.upper())

    directory = tempfile.mkdtemp(prefix="lesson02-")
    path = os.path.join(directory, "server.sock")
    try:
        first_reply, early = _second_client_served_early(
            server_class, ShoutLines, path, patience)
    finally:
        if os.path.exists(path):
            os.unlink(path)  # servers never remove their socket file
        os.rmdir(directory)
    check(first_reply == b"FIRST\n",
          f"the first client got {first_reply!r} back, expected b'FIRST\\n'.")
    check(early is not None,
          f"the second client got no reply while the first was still "
          f"connected, so {name} serves one client at a time (its "
          f"process_request comes from "
          f"{supplier(server_class, 'process_request')}): put the mix-in "
          f"first in the bases.")
    check(early == b"SECOND\n",
          f"the second client got {early!r} back, expected b'SECOND\\n'.")
    passed(f"{name} is a Unix stream server that served a second client "
           f"while the first was still connected")


# -- Exercise 3: a forking UDP server, built by hand -------------------------

def check_forking_udp_server(server_class):
    """Check a hand-built ForkingUDPServer: UDP on IPv4, each datagram handled in a child process."""
    impl = _implementation(server_class)
    name = server_class.__name__
    ready_made = {getattr(module, "ForkingUDPServer", None)
                  for module in (socketserver, sockserv)}
    check(server_class not in ready_made,
          "that is the ready-made ForkingUDPServer: build your own class "
          "from a mix-in and a server class.")
    check(server_class.socket_type == socket.SOCK_DGRAM,
          f"{name}.socket_type is {_family_name(server_class.socket_type)}, "
          f"but a UDP server needs SOCK_DGRAM: build it on UDPServer.")
    check(server_class.address_family == socket.AF_INET,
          f"{name}.address_family is "
          f"{_family_name(server_class.address_family)}, but UDP over IPv4 "
          f"needs AF_INET: build it on UDPServer.")
    where = supplier(server_class, "process_request")
    check(where != "ThreadingMixIn",
          f"{name}.process_request comes from ThreadingMixIn, so each "
          f"datagram would get a thread, not a process: use ForkingMixIn.")
    check(where == "ForkingMixIn",
          f"{name}.process_request comes from {where}, so each datagram "
          f"would be handled in the server's own process: put ForkingMixIn "
          f"first in the bases.")

    class ReplyWithPid(impl.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(str(os.getpid()).encode())

    # handle_request() in this thread, no serving thread: fork() is safest
    # from a process with a single thread.  The datagram is sent first, so
    # it is already waiting when handle_request() looks.
    server = server_class(("127.0.0.1", 0), ReplyWithPid)
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.timeout = DEADLINE
        client.settimeout(DEADLINE)
        client.sendto(b"who are you?", server.server_address)
        server.handle_request()
        try:
            reply = client.recv(64)
        except TimeoutError:
            reply = None
    # Leaving the with block ran server_close(), which reaps the child.
    check(reply is not None,
          f"{name} sent no reply to a datagram within {DEADLINE:g} seconds.")
    check(reply.isdigit() and int(reply) != os.getpid(),
          "the datagram was answered by the server's own process, not by a "
          "child: put ForkingMixIn first in the bases.")
    check(not server.active_children,
          "a child process was still running after server_close().")
    passed(f"{name} is a UDP server that answered a datagram from a child "
           f"process and reaped it")
