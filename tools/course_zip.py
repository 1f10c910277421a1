"""The course as one zip file: what a learner needs to run it, nothing else.

The site offers it as ``download/sockserv-course.zip`` (tools/mkdocs_hooks.py
builds it on every site build), because a notebook downloaded on its own
fails with ``No module named sockserv``: the lessons need the package, the
pinned requirements and the Makefile around them.

Which files: those of the repository, never a build's or a tool's leftovers.

* In a git checkout: ``git ls-files --cached --others --exclude-standard``,
  the tracked files plus new ones that .gitignore does not exclude (a lesson
  being written is included; ``.venv/``, ``site/``, caches never are).
* Elsewhere (an unpacked zip, say): a walk of the folder that skips the same
  leftovers by name (SKIPPED_DIRS, SKIPPED_SUFFIXES).

Of those, only what is under INCLUDED (files and folders at the top).  The
archive is reproducible: entries are sorted, stamped with one fixed date, and
hold the files' bytes unchanged; it needs no network.

Usage::

    python tools/course_zip.py OUT.zip      write the zip
    python tools/course_zip.py --list       list the files it would hold
"""

import argparse
import stat
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

__all__ = ["ARCHIVE_NAME", "FOLDER", "INCLUDED", "course_files", "course_zip_bytes", "is_course_file"]

ROOT = Path(__file__).resolve().parent.parent

ARCHIVE_NAME = "sockserv-course.zip"
FOLDER = "sockserv-course"  # every entry sits in this folder inside the zip

# What a learner needs: the set-up (Makefile, pinned requirements, the
# package metadata), the package, the lessons, the site's sources and tools,
# the tests and benchmarks that `make test` and `make bench` run.
INCLUDED_FILES = {"README.md", "Makefile", "pyproject.toml", "mkdocs.yml", ".gitignore", "conftest.py"}
INCLUDED_PATTERNS = ("requirements*.txt", "constraints*.txt")
INCLUDED_DIRS = {"src", "notebooks", "docs", "tools", "tests", "benchmarks"}
INCLUDED = sorted(INCLUDED_FILES | INCLUDED_DIRS | set(INCLUDED_PATTERNS))

# For the walk outside git: never descend into these, never take these files.
SKIPPED_DIRS = {".git", ".venv", ".venv-lab", "venv", "site", "site-offline", ".cache",
                "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints",
                "build", "dist", "node_modules"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")

# A fixed timestamp (the earliest a zip can hold) makes the archive depend
# only on the files' contents.
_DATE = (1980, 1, 1, 0, 0, 0)


def is_course_file(relative):
    """Is this repository-relative POSIX path one a learner needs?"""
    path = PurePosixPath(relative)
    top = path.parts[0]
    if len(path.parts) == 1:
        return top in INCLUDED_FILES or any(path.match(p) for p in INCLUDED_PATTERNS)
    if top not in INCLUDED_DIRS:
        return False
    return not any(part in SKIPPED_DIRS or part.endswith(SKIPPED_SUFFIXES)
                   for part in path.parts)


def _git_files(root):
    """The checkout's files (tracked, and untracked but not ignored), or None outside git."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    names = [name for name in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
    # A file deleted but not yet committed is still listed: keep what exists.
    return [name for name in names if (root / name).is_file()]


def _walked_files(root):
    """Every file under root, skipping SKIPPED_DIRS, as POSIX paths relative to root."""
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.name in SKIPPED_DIRS or entry.name.endswith(SKIPPED_SUFFIXES):
                continue
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            elif entry.is_file():
                found.append(entry.relative_to(root).as_posix())
    return found


def course_files(root=ROOT):
    """Sorted repository-relative POSIX paths of the files the zip holds."""
    root = Path(root)
    names = _git_files(root)
    if names is None:
        names = _walked_files(root)
    return sorted(name for name in set(names) if is_course_file(name))


def course_zip_bytes(root=ROOT):
    """The zip file's bytes: every course file under FOLDER/, deflated."""
    root = Path(root)
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in course_files(root):
            path = root / name
            info = zipfile.ZipInfo(f"{FOLDER}/{name}", date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Keep the executable bit (scripts), nothing else of the local mode.
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def main(argv=None):
    """Write the zip, or list what it would hold."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("output", nargs="?", type=Path, help="where to write the zip")
    group.add_argument("--list", action="store_true", help="list the files instead")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(course_files()))
        return 0
    data = course_zip_bytes()
    args.output.write_bytes(data)
    print(f"{args.output}: {len(course_files())} files, {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
