"""A Mermaid diagram that shows itself as a picture in Jupyter and as text elsewhere."""

__all__ = ["MermaidDiagram"]


class MermaidDiagram:
    """Mermaid source that renders as a diagram in a notebook.

    Jupyter (and the course site) show the text/markdown form, a fenced
    ``mermaid`` block that is drawn as a picture.  The text/plain form is the
    Mermaid source itself, so the stored output that nbval compares is the
    diagram's definition: deterministic, and readable in a diff.
    """

    def __init__(self, source):
        self.source = source.strip() + "\n"

    def __eq__(self, other):
        return isinstance(other, MermaidDiagram) and self.source == other.source

    def __repr__(self):
        return self.source

    def _repr_markdown_(self):
        return f"```mermaid\n{self.source}```\n"
