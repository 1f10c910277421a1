"""Who is in the chat: the registry of connected clients, shared by every handler thread.

Every handler thread reads and changes the same table of names, so every access goes through
one lock (the naive chat server of lesson 07 iterates a plain dict while another thread deletes
from it, and dies with "dictionary changed size during iteration").

The lock also gives the chat its one global order.  A broadcast appends the line to every
client's outbox while holding the lock, so two broadcasts can never interleave: all clients
receive all broadcast lines in the same order, and one sender's lines in the order it sent them
(its handler thread broadcasts them one after another).  That is cheap because Outbox.put()
never blocks: the lock is never held while a socket is written to.  A put that overflows a slow
client's outbox is answered by kick(), after the lock is released.

    handler threads --join/leave/rename/say--> Registry (one lock) --put--> Outbox per client
"""

import threading

from .chat_protocol import check_nick, render

__all__ = ["Registry", "Full"]


class Full(Exception):
    """Raised by Registry.join() when max_clients clients are registered."""


class Registry:
    """The chat's clients by name, with the broadcasts that keep them informed.

    Methods for handlers (any thread):

    - join(outbox)        add a client under a fresh guest name, which is returned; None if
                          the registry is closed; raises Full if max_clients are registered.
                          Sends the welcome and the joined notices.
    - leave(name)         remove a client; tells the others.  True if the name was present.
                          Its seat is free again before the others are told.
    - rename(old, new)    returns the LINES kind of the error, or None after a rename that
                          has been announced to everyone, or "gone" if old is not registered
                          (the teacher removed it).
    - say(name, text)     broadcast a chat message, the sender included; nothing if name is
                          not registered (any more).
    - names()             the names in use, sorted (case-insensitively).
    - pending(name)       bytes queued for name's client and not yet sent.
    - closed              True once close() has been called.
    - close(line)         refuse joins from now on, queue line to every client, close every
                          outbox; returns the outboxes (for the caller to wait on).

    For the teacher's console (any thread):

    - announce(text)      send "* teacher: TEXT" to everyone.
    - remove(name, line)  send line to name only, then remove it as leave() does and hang up
                          once line has been delivered.  True if the name was present.

    max_clients (None: no limit) is the number of clients registered at once.
    """

    def __init__(self, max_clients=None):
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._clients = {}      # name -> Outbox
        self._guests = 0        # the number in the last default name handed out
        self._closed = False

    def __len__(self):
        with self._lock:
            return len(self._clients)

    @property
    def closed(self):
        """True once close() has been called."""
        with self._lock:
            return self._closed

    def join(self, outbox):
        """Register outbox under a new guest name and announce it; None if closed."""
        with self._lock:
            if self._closed:
                return None
            if self.max_clients is not None and len(self._clients) >= self.max_clients:
                raise Full
            name = self._next_guest_name()
            overflowed = self._broadcast(render("joined", NAME=name))
            self._clients[name] = outbox
            outbox.put(render("welcome", NAME=name))
        self._kick(overflowed)
        return name

    def leave(self, name):
        """Remove name and tell the others; return True if it was registered."""
        with self._lock:
            if self._clients.pop(name, None) is None:
                return False
            # After close() the last line everyone gets is the shutdown notice.
            overflowed = [] if self._closed else self._broadcast(render("left", NAME=name))
        self._kick(overflowed)
        return True

    def remove(self, name, line):
        """Give name its last line, deregister it, tell the others, hang up; True if present."""
        with self._lock:
            box = self._clients.pop(name, None)
            if box is None:
                return False
            box.put(line)
            box.close(hang_up=True)
            overflowed = [] if self._closed else self._broadcast(render("left", NAME=name))
        self._kick(overflowed)
        return True

    def announce(self, text):
        """Send "* teacher: text" to every client."""
        with self._lock:
            overflowed = self._broadcast(render("teacher", TEXT=text))
        self._kick(overflowed)

    def rename(self, old, new):
        """Rename old to new and announce it; return the error's LINES kind, or None."""
        with self._lock:
            if old not in self._clients:
                return "gone"       # removed by the teacher meanwhile
            error = check_nick(new, old, self._clients)
            if error is not None:
                return error
            self._clients[new] = self._clients.pop(old)
            overflowed = self._broadcast(render("renamed", OLD=old, NEW=new))
        self._kick(overflowed)
        return None

    def say(self, name, text):
        """Send "name: text" to every client, the sender included."""
        with self._lock:
            if name not in self._clients:
                return      # removed by the teacher: its last lines go nowhere
            overflowed = self._broadcast(render("message", NAME=name, TEXT=text))
        self._kick(overflowed)

    def names(self):
        """Return the names in use, sorted alphabetically regardless of case."""
        with self._lock:
            return sorted(self._clients, key=lambda name: (name.lower(), name))

    def pending(self, name):
        """Return the bytes queued for name's client and not yet sent (0 if no such client)."""
        with self._lock:
            box = self._clients.get(name)
        return box.pending if box is not None else 0

    def close(self, line):
        """Refuse new joins, queue line to every client, close their outboxes; return them."""
        with self._lock:
            self._closed = True
            outboxes = list(self._clients.values())
            for box in outboxes:
                box.put(line)
                box.close()
        return outboxes

    def _next_guest_name(self):
        """Return the next guestN that nobody uses (someone may have taken one with /nick)."""
        while True:
            self._guests += 1
            name = f"guest{self._guests}"
            if name not in self._clients:
                return name

    def _broadcast(self, data):
        """Queue data to every client; return the outboxes that overflowed.  Lock held."""
        return [box for box in self._clients.values() if not box.put(data)]

    @staticmethod
    def _kick(outboxes):
        """Disconnect clients whose outbox overflowed.  Called without the lock."""
        for box in outboxes:
            box.kick()
