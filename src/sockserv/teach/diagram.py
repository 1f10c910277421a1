"""Draw class hierarchies and call sequences from live classes and real runs.

Nothing here is drawn by hand.  The class pictures are computed from the
classes' ``__bases__``, so the picture of the stdlib and the picture of
sockserv can be compared, and they show what the running Python really has
(the Forking Unix servers exist only from 3.12, forking not at all on
Windows).  The sequence pictures are computed from what ``trace`` recorded.

Classes, in readable parts (the whole hierarchy in one picture is too wide
to read on a page or a phone):

* ``class_diagram(module, names)`` a Mermaid classDiagram of the named classes;
* ``family(module, name)`` the names around one class (its bases, its
  subclasses and their mix-ins), to pass as names;
* ``mixin_table(module)`` mix-in x server -> the combined class, as a table.

Calls:

* ``nested_sequence_diagram(recorder)`` who calls whom, with activation
  bars that show the nesting (serve_forever -> process_request ->
  finish_request -> the handler's constructor -> setup/handle/finish);
* ``sequence_diagram(events)`` the flat form: one arrow per hook, in order.

Every picture is a ``MermaidDiagram`` whose text/plain form is its Mermaid
source, and every table a ``Table`` with an HTML and a text form: both are
deterministic, so nbval can compare them.
"""

import html
import inspect
import socket

from .mermaid import MermaidDiagram

__all__ = ["inheritance_edges", "class_diagram", "family", "mixin_table",
           "Table", "sequence_diagram", "nested_sequence_diagram"]


def _public_classes(module):
    names = getattr(module, "__all__", None) or dir(module)
    found = (getattr(module, name, None) for name in names)
    return [obj for obj in found if inspect.isclass(obj)]


# -- class hierarchies ------------------------------------------------------------


def inheritance_edges(module):
    """The set of (base name, class name) pairs among a module's public classes."""
    classes = _public_classes(module)
    known = {cls.__name__ for cls in classes}
    return {(base.__name__, cls.__name__)
            for cls in classes for base in cls.__bases__
            if base.__name__ in known}


def class_diagram(module, names=None):
    """A Mermaid classDiagram of the module's public classes and their bases.

    names, if given, limits the diagram to those classes (and the edges
    between them).  Edges are sorted so the output never varies.
    """
    edges = inheritance_edges(module)
    if names is not None:
        wanted = set(names)
        edges = {(b, c) for b, c in edges if b in wanted and c in wanted}
    lines = ["classDiagram"]
    lines += [f"    {base} <|-- {cls}" for base, cls in sorted(edges)]
    return MermaidDiagram("\n".join(lines))


def family(module, name):
    """The sorted names of the public classes around module.name, for class_diagram().

    The class itself, its public bases, the public classes built directly
    on it, and their other public bases (the mix-ins): for "TCPServer",
    BaseServer above it, UDPServer and UnixStreamServer below it, and
    ThreadingTCPServer with ThreadingMixIn (and the forking pair where the
    platform has fork()).  A handful of boxes, readable on any screen.
    """
    cls = getattr(module, name)
    classes = _public_classes(module)
    members = {cls, *(base for base in cls.__bases__ if base in classes)}
    for sub in classes:
        if cls in sub.__bases__:
            members.add(sub)
            members.update(base for base in sub.__bases__ if base in classes)
    return sorted(member.__name__ for member in members)


class Table:
    """A small table that shows as HTML in Jupyter and as aligned text elsewhere.

    columns is the header row (its first entry heads the row labels); rows
    is a list of rows, each a list as long as columns.  cell(row, column)
    looks an entry up by the labels.  The text/plain form (what nbval
    compares) holds every entry, so it is as exact as the HTML.
    """

    def __init__(self, columns, rows):
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError("every row needs one entry per column")

    def cell(self, row, column):
        """The entry in the row labelled row, under the column headed column."""
        index = self.columns.index(column)
        for entries in self.rows:
            if entries[0] == row:
                return entries[index]
        raise KeyError(row)

    def __eq__(self, other):
        return (isinstance(other, Table) and self.columns == other.columns
                and self.rows == other.rows)

    def __repr__(self):
        lines = [self.columns, *self.rows]
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(self.columns))]
        return "\n".join("  ".join(str(entry).ljust(width)
                                   for entry, width in zip(line, widths)).rstrip()
                         for line in lines) + "\n"

    def _repr_html_(self):
        def cells(tag, entries):
            return "".join(f"<{tag}>{html.escape(str(entry))}</{tag}>" for entry in entries)
        head = f"<tr>{cells('th', self.columns)}</tr>"
        body = "".join(f"<tr><th>{html.escape(str(row[0]))}</th>{cells('td', row[1:])}</tr>"
                       for row in self.rows)
        return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


#: Shown in mixin_table() where the module has no class for that pair.
NO_CLASS = "—"


def _server_order(cls):
    # TCP, UDP, then the Unix pair: INET before UNIX, stream before datagram.
    return (cls.address_family != socket.AF_INET,
            cls.socket_type != socket.SOCK_STREAM, cls.__name__)


def mixin_table(module):
    """A Table of mix-in x server -> the module's class that combines the two.

    Found by introspection, never listed by hand: a combined class is a
    public class whose bases are exactly (mix-in, server), a server is a
    public subclass of module.BaseServer with a single base, and a mix-in a
    public class (not a server) that is the first base of a combined class.
    Where the module has no class for a pair, the entry is NO_CLASS; so the
    table honestly differs between platforms and versions (Forking Unix
    servers from Python 3.12; no forking row on Windows; no Unix columns
    without AF_UNIX).  Rows sorted by name; columns TCP, UDP, Unix stream,
    Unix datagram.
    """
    base_server = getattr(module, "BaseServer", None)
    if not inspect.isclass(base_server):
        raise ValueError(f"{module.__name__} has no BaseServer class")
    classes = _public_classes(module)
    servers = [cls for cls in classes if issubclass(cls, base_server)
               and cls is not base_server and len(cls.__bases__) == 1]
    combined = {cls.__bases__: cls.__name__ for cls in classes
                if len(cls.__bases__) == 2 and cls.__bases__[1] in servers
                and not issubclass(cls.__bases__[0], base_server)}
    mixins = sorted({mixin for mixin, _ in combined}, key=lambda cls: cls.__name__)
    servers.sort(key=_server_order)
    rows = [[mixin.__name__] + [combined.get((mixin, server), NO_CLASS) for server in servers]
            for mixin in mixins]
    return Table(["mix-in \\ server"] + [server.__name__ for server in servers], rows)


# -- call sequences ------------------------------------------------------------------


def sequence_diagram(events, participants=("client", "server", "handler")):
    """A flat Mermaid sequenceDiagram from recorded "who.hook" events (Recorder.events).

    Each event becomes an arrow from the server (which drives every hook)
    to the object the hook belongs to.  An event "client.NAME" becomes an
    arrow from the client to the server.  It shows the order, not who calls
    whom: nested_sequence_diagram() draws that.
    """
    lines = ["sequenceDiagram"]
    lines += [f"    participant {who}" for who in participants]
    for event in events:
        who, _, hook = event.partition(".")
        if who == "client":
            lines.append(f"    client->>server: {hook}")
        else:
            lines.append(f"    server->>{who}: {hook}()")
    return MermaidDiagram("\n".join(lines))


def nested_sequence_diagram(recorded, participants=("client", "server", "handler")):
    """A Mermaid sequenceDiagram of who calls whom, the nesting drawn as activations.

    recorded is a trace.Recorder (or its timeline).  Each call is an arrow
    from the object whose method is running in that thread (the caller) to
    the object called, and activates it (``->>+``); its return deactivates
    it, so nested calls show as stacked activation bars: finish_request()
    on the server builds the handler, whose __init__() runs setup(),
    handle() and finish(); shutdown_request() calls close_request().  A
    call inside which nothing traced happened is a plain arrow, without an
    activation.  A call with no traced caller in its thread starts from its
    own object.
    A point event "client.NAME" is an arrow from the client to the server.
    Participants not named in participants are added in order of appearance.
    Nesting is per thread: it is clearest on a sync server, where one
    thread runs the whole request.
    """
    timeline = recorded.timeline if hasattr(recorded, "timeline") else list(recorded)
    names = list(participants)
    for step in timeline:
        who = step.event.partition(".")[0]
        if who not in names:
            names.append(who)
    lines = ["sequenceDiagram"]
    lines += [f"    participant {who}" for who in names]
    stacks = {}   # thread -> the participants of its calls in progress
    active = {}   # participant -> calls in progress (Mermaid refuses a stray deactivate)
    steps = iter(enumerate(timeline))
    for index, step in steps:
        who, _, hook = step.event.partition(".")
        stack = stacks.setdefault(step.thread, [])
        caller = stack[-1] if stack else who
        if step.kind == "event":
            if who == "client":
                lines.append(f"    client->>server: {hook}")
            else:
                lines.append(f"    {stack[-1] if stack else 'server'}->>{who}: {hook}()")
        elif step.kind == "call" and _returns_next(timeline, index):
            # Nothing happened inside it: a plain arrow, no empty activation bar.
            lines.append(f"    {caller}->>{who}: {hook}()")
            next(steps)
        elif step.kind == "call":
            lines.append(f"    {caller}->>+{who}: {hook}()")
            stack.append(who)
            active[who] = active.get(who, 0) + 1
        elif active.get(who):
            if stack:
                stack.pop()
            active[who] -= 1
            lines.append(f"    deactivate {who}")
    return MermaidDiagram("\n".join(lines))


def _returns_next(timeline, index):
    """True if the call at index is followed at once by its own return."""
    if index + 1 >= len(timeline):
        return False
    call, after = timeline[index], timeline[index + 1]
    return (after.kind == "return" and after.event == call.event
            and after.thread == call.thread)
