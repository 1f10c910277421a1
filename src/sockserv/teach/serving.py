"""Run a server in a background thread for the length of a ``with`` block.

Kept so that ``from sockserv.teach.serving import serving`` goes on working:
the one implementation is ``sockserv.teach.harness.serving`` (this is the same
object), whose docstring states the contract.
"""

from .harness import serving

__all__ = ["serving"]
