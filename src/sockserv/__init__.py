"""sockserv (being written)."""
