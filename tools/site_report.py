"""Build the course website and report how long it took and what each page weighs.

Figures are printed, never asserted: a page growing is worth knowing about,
not a test failure.  For each HTML page it lists the bytes of the page
itself and of the same-site stylesheets and scripts the page links to (what
a first visit downloads, not counting images, the search index, or Mermaid,
which pages fetch only when they have a diagram).

Usage::

    python tools/site_report.py              build into a temporary folder
    python tools/site_report.py --site site  report on an existing build
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_LINKED = re.compile(r"""<(?:script[^>]*\bsrc|link[^>]*\bhref)=["']([^"'#?]+\.(?:js|css))["']""")
_DIAGRAM = 'class="mermaid"'


def _children_cpu_seconds():
    """CPU seconds used so far by finished child processes (None where unknown)."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(site_dir):
    """Build the site into site_dir with --strict; return (wall, CPU) seconds.

    CPU time is printed too because wall time on a busy machine says more
    about the machine than about the build.
    """
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    cpu_before = _children_cpu_seconds()
    started = time.perf_counter()
    # Not --quiet: it hides warnings from --strict, which then passes.
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(site_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}")
    cpu = None if cpu_before is None else _children_cpu_seconds() - cpu_before
    return wall, cpu


def page_weights(site_dir):
    """(page, html bytes, linked css+js bytes, has a diagram) for each page, heaviest first."""
    site_dir = Path(site_dir)
    rows = []
    for page in sorted(site_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        linked = 0
        for url in set(_LINKED.findall(text)):
            if "//" in url:
                continue  # another host: tests/test_site.py fails the build for those
            # "/assets/x.css" (404.html) is relative to the site's root.
            target = (site_dir / url.lstrip("/")) if url.startswith("/") else (page.parent / url)
            target = target.resolve()
            if target.is_file():
                linked += target.stat().st_size
        rows.append((page.relative_to(site_dir).as_posix(), page.stat().st_size, linked,
                     _DIAGRAM in text))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows


def main(argv=None):
    """Build (or take) a site and print its page weights."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, help="report on this built site instead of building")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sockserv-site-") as scratch:
        if args.site:
            site_dir = args.site
        else:
            site_dir = Path(scratch) / "site"
            wall, cpu = build(site_dir)
            cpu_text = "" if cpu is None else f", {cpu:.1f} s CPU"
            print(f"mkdocs build --strict: {wall:.1f} s{cpu_text}")
        rows = page_weights(site_dir)
        mermaid = site_dir / "assets" / "javascripts" / "mermaid.min.js"
        total = sum(f.stat().st_size for f in site_dir.rglob("*") if f.is_file())

        print(f"{'page':<55} {'html':>10} {'css+js':>10}  diagram")
        for name, html_bytes, linked, diagram in rows:
            print(f"{name:<55} {html_bytes:>10,} {linked:>10,}  {'yes' if diagram else ''}")
        if rows:
            name, html_bytes, _, _ = rows[0]
            print(f"heaviest page: {name}, {html_bytes:,} bytes of HTML")
        course = site_dir / "download" / "sockserv-course.zip"
        if course.is_file():
            print(f"download/sockserv-course.zip (the course, linked from the home and lesson "
                  f"pages): {course.stat().st_size:,} bytes")
        if mermaid.is_file():
            print(f"mermaid.min.js (fetched only by pages with a diagram): "
                  f"{mermaid.stat().st_size:,} bytes")
        where = site_dir if args.site else "a temporary build"
        print(f"whole site: {total:,} bytes ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
