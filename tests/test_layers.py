"""The package's architecture, kept true by tests.

The core stays small enough to read in one sitting, imports only the
standard library, and knows nothing of the course's examples or lesson
helpers; each layer imports only the layers before it.
"""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "sockserv"
CORE = ["__init__.py", "servers.py", "mixins.py", "handlers.py"]
# Two budgets: the code (what a reader must follow) and the whole text.
# Raised for issue 6 from a single 800-line budget (the core then had 742
# lines, 317 of them code): the loop's wake-up socket, the pause after
# EMFILE and the per-version names added about 90 lines of code, and the
# docstrings grew by the contracts the stdlib states (override rules,
# credit, what follows the stdlib and why).  Docstrings and comments are
# what a course should have more of, so the code has the tighter budget.
CORE_CODE_BUDGET = 450
CORE_LINE_BUDGET = 1050

# Imports outside the standard library that one module may make, and why.
# The client may edit lines with prompt_toolkit where it is installed (issue 8
# allows a well-kept library for the client only); it imports it lazily and
# works without it (tests/test_client.py checks the fallback).  The lesson
# helpers may draw with matplotlib, which the lessons' environment pins.
ALLOWED_OUTSIDE_STDLIB = {
    "examples/client_tty.py": {"prompt_toolkit"},
    "teach": {"matplotlib"},
}


def allowed_outside_stdlib(path):
    """The non-stdlib top-level modules path may import: its own and its folder's."""
    relative = path.relative_to(PACKAGE).as_posix()
    folder = relative.split("/")[0] if "/" in relative else None
    return ALLOWED_OUTSIDE_STDLIB.get(relative, set()) | ALLOWED_OUTSIDE_STDLIB.get(folder, set())


# Layer of each part of the package; a module may import its own layer and lower ones.
LAYERS = {"core": 0, "examples": 1, "teach": 2}


def layer_of(path):
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) > 1:
        return LAYERS[relative.parts[0]]
    # `python -m sockserv` is the command line, which belongs to the examples.
    return LAYERS["examples"] if relative.name == "__main__.py" else LAYERS["core"]


def imported_modules(source, package):
    """Absolute names of every module the source imports; package is its dotted parts."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                yield module
            else:
                yield from (f"{module}.{alias.name}" for alias in node.names)


def violations(path):
    """One sentence per import of path that breaks the layering or the stdlib-only rule."""
    own = layer_of(path)
    package = ["sockserv", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for module in imported_modules(path.read_text(encoding="utf-8"), package):
        layer = sockserv_layer(module)
        top = module.split(".")[0]
        if layer is None and top not in sys.stdlib_module_names | allowed_outside_stdlib(path):
            found.append(f"{path.name} imports {module}, which is not in the standard library")
        elif layer is not None and layer > own:
            found.append(f"{path.name} (layer {own}) imports {module} (layer {layer})")
    return found


def sockserv_layer(module):
    parts = module.split(".")
    if parts[0] != "sockserv":
        return None
    return LAYERS.get(parts[1], LAYERS["core"]) if len(parts) > 1 else LAYERS["core"]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def code_lines(source):
    """Lines that hold code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if ast.get_docstring(node) is not None:
                first = node.body[0]
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings)


def test_code_lines_counts_only_code():
    source = '"""Doc,\non two lines."""\n\n# a comment\ndef f():\n    """Doc."""\n    return 1  # why\n'
    assert code_lines(source) == 2


def test_core_stays_under_its_budgets():
    sources = [(PACKAGE / name).read_text(encoding="utf-8") for name in CORE]
    lines = sum(len(source.splitlines()) for source in sources)
    code = sum(code_lines(source) for source in sources)
    assert code < CORE_CODE_BUDGET, f"the core has {code} lines of code; keep it under {CORE_CODE_BUDGET}"
    assert lines < CORE_LINE_BUDGET, f"the core has {lines} lines; keep it under {CORE_LINE_BUDGET}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_lower_layers_and_the_stdlib(path):
    assert violations(path) == []


def test_the_layer_checker_catches_violations():
    # The rule above must be able to fail: feed it a core module that imports upwards.
    fake = PACKAGE / "fake_core_module.py"
    source = "import json\nfrom .teach import trace\nfrom .examples.chat import make_server\nimport numpy\n"
    modules = list(imported_modules(source, ["sockserv"]))
    assert modules == ["json", "sockserv.teach", "sockserv.examples.chat", "numpy"]
    assert [sockserv_layer(m) for m in modules] == [None, 2, 1, None]
    assert layer_of(fake) == 0
    assert list(imported_modules("from .. import teach", ["sockserv", "examples"])) == [
        "sockserv.teach"]
    # The allowances are per module: the core and the servers get none.
    assert allowed_outside_stdlib(PACKAGE / "servers.py") == set()
    assert allowed_outside_stdlib(PACKAGE / "examples" / "chat.py") == set()
    assert allowed_outside_stdlib(PACKAGE / "examples" / "client_tty.py") == {"prompt_toolkit"}


def test_importing_the_core_loads_neither_examples_nor_teach():
    import subprocess
    code = ("import sys, sockserv; "
            "print(sorted(m for m in sys.modules if m.startswith('sockserv.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert "examples" not in out and "teach" not in out, out
    assert "sockserv.servers" in out
