"""Record the hooks that servers and handlers call, in the order they run.

``traced(cls, recorder)`` returns a subclass of ``cls`` whose hook methods
note their name in ``recorder`` and then do exactly what they did before.
Nothing else changes, so a traced stdlib server and a traced sockserv server
can run the same scenario and their records can be compared line by line.

The recorder is thread-safe (handler hooks run in other threads under the
threading mix-in) and records only which hook ran, never ports, addresses or
thread ids, so what it prints is the same on every run.

Besides the flat list of hooks (``Recorder.events``), the recorder keeps a
``timeline`` of calls *and returns*, per thread, so that the nesting can be
drawn (``diagram.nested_sequence_diagram``): ``finish_request()`` builds the
handler, whose constructor runs setup/handle/finish, and so on.  Three
"frames" are traced for that purpose only and never appear in ``events``:
``__init__`` of servers and handlers, and ``serve_forever`` and
``handle_request`` of servers.  A frame's call is noted lazily, just before
the first thing that happens inside it (or at its return): the moment
``serve_forever()`` starts in its thread races with whatever the notebook's
thread records, while the first hook it calls does not.
"""

import collections
import functools
import threading

__all__ = ["Recorder", "Step", "traced", "SERVER_HOOKS", "HANDLER_HOOKS",
           "SERVER_FRAMES", "HANDLER_FRAMES"]

# service_actions is left out: it runs on every turn of the serving loop, so
# how often it appears depends on timing, not on what the server does.
SERVER_HOOKS = ("server_bind", "server_activate", "get_request",
                "verify_request", "process_request", "finish_request",
                "shutdown_request", "close_request", "handle_error",
                "handle_timeout", "server_close")
HANDLER_HOOKS = ("setup", "handle", "finish")
# Traced for the nesting only (timeline), not listed in events.
SERVER_FRAMES = ("__init__", "serve_forever", "handle_request")
HANDLER_FRAMES = ("__init__",)

#: One entry of Recorder.timeline: kind is "call", "return" or "event" (a
#: point event from record()); thread numbers threads 0, 1, ... in the order
#: they first recorded something; frame is True for SERVER/HANDLER_FRAMES.
Step = collections.namedtuple("Step", "kind event thread frame")


class Recorder:
    """An ordered, thread-safe record of "who.hook" events.

    ``events`` is the flat list of hooks called (what lessons print);
    ``timeline`` adds the returns and the frames, for nested diagrams.
    """

    def __init__(self):
        self._lock = threading.Lock()
        # Notified on every new step, so that wait_for() needs no polling.
        self._changed = threading.Condition(self._lock)
        self._steps = []
        self._threads = {}   # thread ident -> small number, in order of appearance
        self._pending = {}   # thread number -> frame calls not yet noted

    def _thread_number(self):
        return self._threads.setdefault(threading.get_ident(), len(self._threads))

    def _note(self, kind, event, frame=False):
        # Called with the lock held: first the frames this thread is inside.
        thread = self._thread_number()
        for pending in self._pending.pop(thread, ()):
            self._steps.append(Step("call", pending, thread, True))
        self._steps.append(Step(kind, event, thread, frame))
        self._changed.notify_all()

    def record(self, event):
        """Append one point event, such as "client.connect" (from any thread)."""
        with self._lock:
            self._note("event", event)

    def enter(self, event, frame=False):
        """Note that a traced method has been called (traced() does this)."""
        with self._lock:
            if frame:
                self._pending.setdefault(self._thread_number(), []).append(event)
            else:
                self._note("call", event)

    def leave(self, event, frame=False):
        """Note that a traced method has returned or raised (traced() does this)."""
        with self._lock:
            self._note("return", event, frame)

    def _events(self):
        # Called with the lock held.
        return [step.event for step in self._steps
                if step.kind != "return" and not step.frame]

    @property
    def events(self):
        """The hooks called and the point events so far, oldest first (no frames, no returns)."""
        with self._lock:
            return self._events()

    def wait_for(self, event, timeout):
        """Wait until ``event`` is in ``events`` (at most ``timeout`` seconds); True if it is.

        For a hook that runs in another thread after the moment the caller
        can observe: under the threading mix-in a client sees the end of its
        reply at shutdown_request(), while close_request() is still to come
        in the handler's thread.  Waiting for it before shutting the server
        down keeps the recorded order the same on every run.
        """
        with self._changed:
            return self._changed.wait_for(lambda: event in self._events(), timeout)

    @property
    def timeline(self):
        """Every Step so far, oldest first: calls, returns and point events."""
        with self._lock:
            return list(self._steps)

    def clear(self):
        """Forget every event (to trace the next scenario on its own)."""
        with self._lock:
            self._steps.clear()
            self._threads.clear()
            self._pending.clear()

    def print(self):
        """Print the events one per line, numbered from 1."""
        for number, event in enumerate(self.events, 1):
            print(f"{number:2}. {event}")


def traced(cls, recorder, hooks=None, label=None, frames=None):
    """Return a subclass of cls whose hooks record "label.hook" before running.

    hooks defaults to SERVER_HOOKS for server classes (from either
    implementation) and HANDLER_HOOKS for handlers; label defaults to
    "server" or "handler".  frames (default SERVER_FRAMES or HANDLER_FRAMES,
    () to trace none) are traced for recorder.timeline only.  Every traced
    method also records its return, even when it raises.
    """
    # Duck typing, so that stdlib classes and sockserv classes both qualify.
    server = hasattr(cls, "serve_forever")
    if hooks is None:
        hooks = SERVER_HOOKS if server else HANDLER_HOOKS
    if label is None:
        label = "server" if hooks is SERVER_HOOKS else "handler"
    if frames is None:
        frames = SERVER_FRAMES if server else HANDLER_FRAMES

    def wrap(name, frame):
        original = getattr(cls, name)
        event = f"{label}.{name}"

        @functools.wraps(original)
        def recording(self, *args, **kwargs):
            recorder.enter(event, frame)
            try:
                return original(self, *args, **kwargs)
            finally:
                recorder.leave(event, frame)
        return recording

    namespace = {name: wrap(name, True) for name in frames
                 if hasattr(cls, name) and name not in hooks}
    namespace.update({name: wrap(name, False) for name in hooks if hasattr(cls, name)})
    return type(f"Traced{cls.__name__}", (cls,), namespace)
