"""Every engine the Echo and Chat servers run on, under the name `--impl` gives it.

    NAMES                  ("stdlib", "sockserv", "asyncio"): the one list; the command line's
                           --impl choices, the tests' parameters and the benchmark's columns
    echo_server(name, address, udp=False, mode=None)
    chat_server(name, address, **limits)

"stdlib" and "sockserv" build the socketserver versions (echo, chat) on the standard
library's classes or on the course's own; "asyncio" builds aio_echo and aio_chat, which share
the protocol code and run every client on one event loop.  Each returns a bound, listening
server with the same outside: server_address, serve_forever() in a thread, stop() from
another, and for chat, registry.
"""

import importlib
import time

from .chat_protocol import LIMITS

__all__ = ["NAMES", "THREADED", "module", "echo_server", "chat_server"]

#: --impl name -> the module the server is built on.
MODULES = {"stdlib": "socketserver", "sockserv": "sockserv", "asyncio": "asyncio"}
NAMES = tuple(MODULES)
#: The engines with a thread per client (and echo's --mode).
THREADED = ("stdlib", "sockserv")


def module(name):
    """Import and return the module engine name is built on."""
    return importlib.import_module(MODULES[name])


def echo_server(name, address, *, udp=False, mode=None):
    """Return an echo server on engine name; mode (sync, threading, forking) is for threads."""
    if name == "asyncio":
        if mode is not None:
            raise ValueError(f"mode {mode!r} does not apply to asyncio: every client is "
                             f"served by one event loop")
        from . import aio_echo
        return aio_echo.make_server(address, udp=udp)
    from . import echo
    return echo.make_server(address, impl=module(name), udp=udp, mode=mode or "threading")


def chat_server(name, address, *, max_line=LIMITS.max_line, idle_timeout=LIMITS.idle_timeout,
                max_clients=LIMITS.max_clients, rate=LIMITS.rate, burst=LIMITS.burst,
                clock=time.monotonic):
    """Return a chat server on engine name, with chat.make_server's limits."""
    limits = dict(max_line=max_line, idle_timeout=idle_timeout, max_clients=max_clients,
                  rate=rate, burst=burst, clock=clock)
    if name == "asyncio":
        from . import aio_chat
        return aio_chat.make_server(address, **limits)
    from . import chat
    return chat.make_server(address, impl=module(name), **limits)
