"""sockserv: a small, readable re-implementation of Python's socketserver.

The course this package belongs to reads it side by side with the standard
library's ``socketserver``: the public names are the same as those of the
stdlib of the Python it runs on (3.10 to 3.13; for instance the forking
Unix servers only from 3.12), and so is the behaviour, so any program
written for one runs on the other.

Credit: the API and the behaviour follow CPython's ``socketserver`` module
(Python Software Foundation License); the code is written anew for the
course, and differs where a clearer design exists: the serve loop wakes at
once on ``shutdown()``, it does not spin when ``accept()`` runs out of
descriptors, and private state is name-mangled so that subclasses cannot
clash with it.

The design separates three questions that every network server answers:

* Where do requests come from?  A *server* class owns the socket and turns
  readiness into requests (``servers.py``).
* Where does a request run?  By default in the serving thread; a *mix-in*
  moves it to a thread or a child process (``mixins.py``).
* What does a request do?  A *request handler* class, one instance per
  request (``handlers.py``).

Any server combines with any mix-in and any handler.  The classes:

```text
BaseServer
 +-- TCPServer
      +-- UDPServer
      |    +-- UnixDatagramServer
      +-- UnixStreamServer

ThreadingMixIn + TCPServer          = ThreadingTCPServer
ThreadingMixIn + UDPServer          = ThreadingUDPServer
ThreadingMixIn + UnixStreamServer   = ThreadingUnixStreamServer
ThreadingMixIn + UnixDatagramServer = ThreadingUnixDatagramServer
ForkingMixIn   + TCPServer          = ForkingTCPServer
ForkingMixIn   + UDPServer          = ForkingUDPServer
ForkingMixIn   + UnixStreamServer   = ForkingUnixStreamServer    (3.12+)
ForkingMixIn   + UnixDatagramServer = ForkingUnixDatagramServer  (3.12+)

BaseRequestHandler
 +-- StreamRequestHandler       rfile/wfile on a connection
 +-- DatagramRequestHandler     rfile/wfile on one datagram
```

UDPServer derives from TCPServer only to reuse its socket set-up; it
overrides everything that assumes a connection.  The Unix servers differ
from their parents in one class attribute, ``address_family``.

To build a server: subclass a handler and write ``handle()``; pick a server
class (with a mix-in if clients must be served at the same time); create it
with an address and the handler class; call ``serve_forever()`` (and from
another thread, ``shutdown()``), then ``server_close()`` or use ``with``.

The course's examples (``sockserv.examples``) and lesson helpers
(``sockserv.teach``) are built on this core; the core never imports them.
"""

# Each module lists its public names in __all__, including the optional ones
# that exist only where the platform allows (AF_UNIX, fork), exactly as in
# the standard library; the package exports their union.
from . import handlers, mixins, servers
from .handlers import *  # noqa: F401,F403
from .mixins import *  # noqa: F401,F403
from .servers import *  # noqa: F401,F403

__all__ = servers.__all__ + mixins.__all__ + handlers.__all__
