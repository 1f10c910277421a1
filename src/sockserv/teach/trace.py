"""Record the hooks that servers and handlers call, in the order they run.

``traced(cls, recorder)`` returns a subclass of ``cls`` whose hook methods
note their name in ``recorder`` and then do exactly what they did before.
Nothing else changes, so a traced stdlib server and a traced sockserv server
can run the same scenario and their records can be compared line by line.

The recorder is thread-safe (handler hooks run in other threads under the
threading mix-in) and records only which hook ran, never ports, addresses or
thread ids, so what it prints is the same on every run.
"""

import functools
import threading

__all__ = ["Recorder", "traced", "SERVER_HOOKS", "HANDLER_HOOKS"]

# service_actions is left out: it runs on every turn of the serving loop, so
# how often it appears depends on timing, not on what the server does.
SERVER_HOOKS = ("server_bind", "server_activate", "get_request",
                "verify_request", "process_request", "finish_request",
                "shutdown_request", "close_request", "handle_error",
                "handle_timeout", "server_close")
HANDLER_HOOKS = ("setup", "handle", "finish")


class Recorder:
    """An ordered, thread-safe list of "who.hook" events."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events = []

    def record(self, event):
        """Append one event (called by traced methods, from any thread)."""
        with self._lock:
            self._events.append(event)

    @property
    def events(self):
        """A copy of the events so far, oldest first."""
        with self._lock:
            return list(self._events)

    def clear(self):
        """Forget every event (to trace the next scenario on its own)."""
        with self._lock:
            self._events.clear()

    def print(self):
        """Print the events one per line, numbered from 1."""
        for number, event in enumerate(self.events, 1):
            print(f"{number:2}. {event}")


def _default_hooks(cls):
    # Duck typing, so that stdlib classes and sockserv classes both qualify.
    return SERVER_HOOKS if hasattr(cls, "serve_forever") else HANDLER_HOOKS


def traced(cls, recorder, hooks=None, label=None):
    """Return a subclass of cls whose hooks record "label.hook" before running.

    hooks defaults to SERVER_HOOKS for server classes (from either
    implementation) and HANDLER_HOOKS for handlers; label defaults to
    "server" or "handler".
    """
    if hooks is None:
        hooks = _default_hooks(cls)
    if label is None:
        label = "server" if hooks is SERVER_HOOKS else "handler"

    def wrap(name):
        original = getattr(cls, name)

        @functools.wraps(original)
        def recording(self, *args, **kwargs):
            recorder.record(f"{label}.{name}")
            return original(self, *args, **kwargs)
        return recording

    namespace = {name: wrap(name) for name in hooks if hasattr(cls, name)}
    return type(f"Traced{cls.__name__}", (cls,), namespace)
