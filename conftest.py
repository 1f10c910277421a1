"""pytest set-up for the whole repository: how nbval runs the lessons' notebooks.

A ``conftest.py`` applies only to the files below its own folder, so the hooks
for notebooks/ are registered here, at the root.  They live in
``tests/notebook_kernels.py`` (a private kernel per notebook, and the check that
a lesson leaves nothing behind); the fixtures of the test files are in
``tests/conftest.py``.
"""

import pathlib
import sys

# tests/ holds no package (its modules import each other by name), so it goes on
# the path here, before pytest would put it there for tests/conftest.py.
TESTS = str(pathlib.Path(__file__).resolve().parent / "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

pytest_plugins = ["notebook_kernels"]
