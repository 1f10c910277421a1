"""Draw class hierarchies and call sequences as Mermaid diagrams.

The class diagram is computed from the live classes (their ``__bases__``),
not written by hand, so the picture of the stdlib and the picture of
sockserv can be compared: if the two hierarchies differ, so do the diagrams.
"""

import inspect

from .mermaid import MermaidDiagram

__all__ = ["inheritance_edges", "class_diagram", "sequence_diagram"]


def _public_classes(module):
    names = getattr(module, "__all__", None) or dir(module)
    found = (getattr(module, name, None) for name in names)
    return [obj for obj in found if inspect.isclass(obj)]


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


def sequence_diagram(events, participants=("client", "server", "handler")):
    """A Mermaid sequenceDiagram from recorded "who.hook" events.

    Each event becomes an arrow from the server (which drives every hook)
    to the object the hook belongs to.  An event "client.NAME" becomes an
    arrow from the client to the server.
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
