"""sockserv exports the same names, classes, defaults and signatures as socketserver.

Code written for one must run on the other unchanged, so the public surface
is compared name by name against the stdlib of the Python running these
tests: the same names, no more and no fewer, on 3.10 (no allow_reuse_port)
to 3.13 (ForkingUnixStreamServer and ForkingUnixDatagramServer from 3.12).
"""

import inspect
import socketserver
import sys

import pytest

import sockserv
from helpers import ALL

#: The public names the course promises (COMMON.md), in socketserver's order.
PROMISED = (
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "UnixStreamServer",
    "UnixDatagramServer",
    "ThreadingMixIn",
    "ForkingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ThreadingUnixStreamServer",
    "ThreadingUnixDatagramServer",
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
)
#: Exported by socketserver only on Python 3.12+ (and only with fork and AF_UNIX).
NEWER_STDLIB_ONLY = {"ForkingUnixStreamServer", "ForkingUnixDatagramServer"}

#: Class attributes whose defaults are part of the contract.
DEFAULTS = (
    "timeout",
    "address_family",
    "socket_type",
    "request_queue_size",
    "allow_reuse_address",
    "allow_reuse_port",
    "max_packet_size",
    "daemon_threads",
    "block_on_close",
    "max_children",
    "active_children",
    "rbufsize",
    "wbufsize",
    "disable_nagle_algorithm",
)

PUBLIC_CLASSES = sorted(set(PROMISED) | set(ALL))


@pytest.mark.parametrize("name", PROMISED)
def test_promised_name_is_a_class(name):
    assert inspect.isclass(getattr(sockserv, name, None)), f"sockserv.{name} is missing"


def test_all_matches_stdlib():
    assert set(PROMISED) <= set(socketserver.__all__)  # the promise itself matches this stdlib
    assert set(sockserv.__all__) == set(socketserver.__all__)
    assert len(sockserv.__all__) == len(set(sockserv.__all__)), "duplicates in __all__"


def test_newer_names_exist_exactly_from_python_3_12():
    expected = NEWER_STDLIB_ONLY if sys.version_info >= (3, 12) else set()
    assert NEWER_STDLIB_ONLY & set(socketserver.__all__) == expected  # the fact, on this stdlib
    assert {name for name in NEWER_STDLIB_ONLY if hasattr(sockserv, name)} == expected


def test_no_public_class_beyond_the_stdlibs():
    """Every public class sockserv defines is one that socketserver exports."""
    defined = {
        name for name in dir(sockserv)
        if not name.startswith("_") and inspect.isclass(getattr(sockserv, name))
        and getattr(sockserv, name).__module__.startswith("sockserv")
    }
    assert defined == set(socketserver.__all__)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_public_attributes_match_stdlib(name):
    """The same public names on each class: e.g. no allow_reuse_port on 3.10."""
    if not hasattr(socketserver, name):
        pytest.skip(f"socketserver.{name} does not exist on this platform")

    def public(module):
        return {attr for attr in dir(getattr(module, name)) if not attr.startswith("_")}

    assert public(sockserv) == public(socketserver)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_own_class_attributes_match_stdlib(name):
    """Which defaults a class sets itself (UDPServer's reuse options), not only their values."""
    if not hasattr(socketserver, name):
        pytest.skip(f"socketserver.{name} does not exist on this platform")

    def own(module):
        return {attr for attr in vars(getattr(module, name)) if attr in DEFAULTS}

    assert own(sockserv) == own(socketserver)


def test_star_import_gives_the_promised_names():
    namespace = {}
    exec("from sockserv import *", namespace)
    assert set(PROMISED) <= set(namespace)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_class_hierarchy_matches_stdlib(name):
    """Same public bases in the same MRO order (the mix-in comes first)."""

    def public_mro(module):
        return [k.__name__ for k in getattr(module, name).__mro__ if k.__name__ in PUBLIC_CLASSES]

    if not hasattr(socketserver, name):
        pytest.skip(f"socketserver.{name} does not exist on this platform")
    assert public_mro(sockserv) == public_mro(socketserver)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_class_defaults_match_stdlib(name):
    if not hasattr(socketserver, name):
        pytest.skip(f"socketserver.{name} does not exist on this platform")
    stdlib_class, sockserv_class = getattr(socketserver, name), getattr(sockserv, name)
    compared = 0
    for attr in DEFAULTS:
        if hasattr(stdlib_class, attr):
            compared += 1
            assert hasattr(sockserv_class, attr), f"{name}.{attr} is missing"
            assert getattr(sockserv_class, attr) == getattr(stdlib_class, attr), f"{name}.{attr}"
    assert compared or name in ("BaseRequestHandler", "DatagramRequestHandler", "ThreadingMixIn")


def _parameters(function):
    """What a caller depends on: each parameter's name, kind and default (not annotations)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _public_callables(klass):
    names = [n for n in dir(klass) if not n.startswith("_") and callable(getattr(klass, n))]
    return names + ["__init__"]


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_method_signatures_match_stdlib(name):
    """Every public stdlib method exists with the same parameters (names, kinds, defaults)."""
    if not hasattr(socketserver, name):
        pytest.skip(f"socketserver.{name} does not exist on this platform")
    stdlib_class, sockserv_class = getattr(socketserver, name), getattr(sockserv, name)
    for method in _public_callables(stdlib_class):
        assert hasattr(sockserv_class, method), f"{name}.{method} is missing"
        expected = _parameters(getattr(stdlib_class, method))
        assert _parameters(getattr(sockserv_class, method)) == expected, f"{name}.{method}"


def test_sockserv_is_not_the_stdlib():
    """Guard against a core that simply re-exports socketserver's classes."""
    for name in PROMISED:
        assert getattr(sockserv, name) is not getattr(socketserver, name), name
