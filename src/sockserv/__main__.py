"""`python -m sockserv`: the course's command line (see sockserv.examples.cli)."""

import sys

from sockserv.examples.cli import main

if __name__ == "__main__":
    # Name the program as it was typed, so usage lines and errors show a command that works.
    sys.exit(main(prog="python -m sockserv"))
