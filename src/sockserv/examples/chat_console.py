"""The teacher's console: commands typed on the chat server's standard input.

    who          print the connected names
    say TEXT     send every client "* teacher: TEXT"
    kick NAME    send NAME "* you have been removed", close it; the others get "* NAME left"
    quit         stop the server, as Ctrl-C does
    help         list these commands

A command is the first word of the line, lower case; an empty line does nothing; anything else
prints one line saying it is unknown and changes nothing.  The console prints only on its own
output (the server's stdout), one line per command that has something to say.  End of input
(Ctrl-D, or the end of a pipe) ends the console, never the server.

`Console(registry, lines_in, out, on_quit)` does no socket I/O itself: it calls the registry,
which any server implementation has, and on_quit(), which the command line provides.
"""

from .chat_clean import clean
from .chat_protocol import render

__all__ = ["Console", "HELP"]

HELP = ("commands: who (list the connected names), say TEXT (to everyone), "
        "kick NAME (remove a client), quit (stop the server), help")


class Console:
    """Reads teacher commands from lines_in (text lines) until its end; see the docstring."""

    def __init__(self, registry, lines_in, out, on_quit):
        self.registry = registry
        self.lines_in = lines_in
        self.out = out
        self.on_quit = on_quit

    def run(self):
        """Obey every line until end of input or quit."""
        for line in self.lines_in:
            if not self.obey(line):
                return
        self.print("console: end of input; the server keeps running (Ctrl-C stops it)")

    def obey(self, line):
        """Carry out one console line; return False after quit."""
        word, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if not word:
            pass
        elif word == "who":
            names = self.registry.names()
            self.print(f"users ({len(names)}): {', '.join(names) or 'nobody'}")
        elif word == "say":
            text = clean(rest).strip()
            if text:
                self.registry.announce(text)
            else:
                self.print("usage: say TEXT")
        elif word == "kick":
            if not rest:
                self.print("usage: kick NAME")
            elif self.registry.remove(rest, render("removed")):
                self.print(f"{rest} removed")
            else:
                self.print(f"no one is called {rest!r} (who lists the names)")
        elif word == "quit":
            self.on_quit()
            return False
        elif word == "help":
            self.print(HELP)
        else:
            self.print(f"unknown command {word!r}; {HELP}")
        return True

    def print(self, text):
        """One line on the console's output, at once."""
        self.out.write(text + "\n")
        self.out.flush()
