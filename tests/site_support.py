"""What the website's tests share: building the site, serving it, and looking at it in a browser.

tests/test_site.py checks the site as published (built for a sub-path, served
over HTTP); tests/test_site_offline.py checks the copy that opens from
``file://``.  Two files, so that the two builds and their browser visits run on
two workers side by side.  Here:

* ``mkdocs_build()``: one ``mkdocs build --strict`` into a folder, with some
  SOCKSERV_* settings; the notebooks' conversion to HTML is kept between runs
  (mkdocs-jupyter's own cache, keyed by each notebook's bytes and the plugin's
  options), in build/test-site/, one cache per kind of build;
* ``SiteServer``: serves a built folder at SUB_PATH only, as a project host does;
* ``launch_browser()``, ``new_context()``: Debian's Chromium through Playwright;
* ``visit_pages()``: open pages one after another and record what a reader
  would see on each (``Visit``);
* the JavaScript probes (VISIBILITY, LAYOUT_PROBLEMS) the visits run in each page.

Imported as ``import site_support`` (pytest puts tests/ on sys.path).
"""

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import course_zip  # noqa: E402  (tools/course_zip.py: what the course download holds)
import lessons  # noqa: E402  (tools/lessons.py: the one list of lessons)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REQUIRE_BROWSER = os.environ.get("SOCKSERV_REQUIRE_BROWSER") == "1"
SCREENSHOTS = os.environ.get("SOCKSERV_SITE_SCREENSHOTS")

# The published build lives under this sub-path, as a project site does on
# GitHub Pages; the repository address is made up (example.org is reserved
# for examples) and only ever appears as a link.
SUB_PATH = "/some-course/"
REPO_URL = "https://git.example.org/teacher/sockserv-course.git"
COURSE_ZIP = f"download/{course_zip.ARCHIVE_NAME}"

# Browser variants: (name, viewport width, colour scheme).  Every page is
# loaded once, then looked at in each variant in turn, as a reader would: the
# window resized, the scheme switched with the header's toggle (Material
# redraws nothing on either, so one load sees all four), in the order
# variants_from() gives, which switches the scheme once per page.
DESKTOP, PHONE = 1280, 390
VARIANTS = [("desktop-light", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"),
            ("phone-dark", PHONE, "dark"), ("phone-light", PHONE, "light")]
SCHEMES = {"light": "default", "dark": "slate"}  # Material's data-md-color-scheme

# The first test to need a site pays for its build and, for the browser
# tests, for visiting every page (about 4 s per build, 8 s with no cached
# notebook, and 20 s of visits on an idle 2-core machine; several times that on
# a busy one).  The limits leave room for a busy machine; they stop a hang, they
# do not measure speed.
BUILD_TIMEOUT = 240  # seconds
BROWSER_TIMEOUT_MS = 30_000  # any one browser step: load a page, draw its diagrams
# Reaching the next page by a click: fetching and drawing a lesson page took over 30 s once,
# with two test runs side by side on 2 cores (16 workers, 6 browsers).
NAVIGATION_TIMEOUT_MS = 2 * BROWSER_TIMEOUT_MS
MERMAID_SCRIPT = "mermaid.min.js"

# Material draws each diagram into a *closed* shadow root, which no DOM query
# can enter.  In the test browser only, make shadow roots open so the test
# can look at the <svg> inside.
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, Object.assign({}, init, {mode: "open"}));
};
"""

# Of the given elements that have something to show, how many a reader can
# see and how many not (display:none, visibility:hidden, inside a closed
# <details>, or of zero size).  An element with nothing to show, such as an
# output that is one blank line, counts as neither.
VISIBILITY = """
els => {
  const counts = {shown: 0, hidden: 0};
  for (const el of els) {
    const hasContent = el.shadowRoot !== null || el.textContent.trim() !== "" ||
      el.querySelector("img, svg, canvas, video, iframe, table") !== null;
    if (!hasContent) continue;
    const box = el.getBoundingClientRect();
    const seen = el.checkVisibility({checkVisibilityCSS: true}) && box.width > 0 && box.height > 0;
    counts[seen ? "shown" : "hidden"] += 1;
  }
  return counts;
}
"""

# What a reader of this page at this size would find wrong with its layout,
# {"problems": {check: [examples]}, "seen": {thing: how many were looked at}}.
# Run with every <details> open and every diagram drawn.
#   page-scrolls-sideways   the whole page is wider than the window
#   code-clipped            a code line cut off: wider than its box, no scrolling
#   code-bleeds             a code box reaching past the article's edge
#   copy-covers-code        the copy button on top of the code
#   wide-prompt             on a phone, an "In [n]:" column over 10% of the width
#   output-breaks-words     outputs wrap anywhere, splitting words (break-all)
#   diagram-shrunk          a diagram below 3/4 of its natural size
#   diagram-clipped         a diagram wider than its box that cannot scroll
#   faint-arrowhead         an arrowhead with contrast under 3:1 against the page
LAYOUT_PROBLEMS = """
(phone) => {
  const problems = {};
  const seen = {code: 0, wideCode: 0, prompts: 0, outputs: 0, diagrams: 0, arrowheads: 0};
  const add = (check, what) => { (problems[check] = problems[check] || []).push(what); };
  const scrolls = el => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const snippet = el => el.textContent.trim().slice(0, 40);
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    add("page-scrolls-sideways", `${root.scrollWidth} px in a ${root.clientWidth} px window`);
  }
  const article = document.querySelector(".md-content");
  const articleRight = article ? article.getBoundingClientRect().right : Infinity;
  for (const editor of document.querySelectorAll(".jp-InputArea-editor")) {
    const pre = editor.querySelector("pre");
    if (!pre) continue;
    const box = pre.getBoundingClientRect();
    seen.code += 1;
    if (pre.scrollWidth > pre.clientWidth + 1) seen.wideCode += 1;
    if (pre.scrollWidth > pre.clientWidth + 1 && !scrolls(pre)) add("code-clipped", snippet(pre));
    if (box.right > articleRight + 1) add("code-bleeds", snippet(pre));
    const button = editor.querySelector("clipboard-copy");
    if (button && button.checkVisibility()) {
      const b = button.getBoundingClientRect();
      const overlap = b.left < box.right - 1 && b.right > box.left + 1 &&
                      b.top < box.bottom - 1 && b.bottom > box.top + 1;
      if (overlap) add("copy-covers-code", snippet(pre));
    }
  }
  if (phone) {
    for (const prompt of document.querySelectorAll(".jp-InputPrompt, .jp-OutputPrompt")) {
      const width = prompt.checkVisibility() ? prompt.getBoundingClientRect().width : 0;
      seen.prompts += 1;
      if (width > 0.1 * root.clientWidth) add("wide-prompt", `${Math.round(width)} px`);
    }
  }
  for (const pre of document.querySelectorAll(".jp-OutputArea-output pre")) {
    seen.outputs += 1;
    if (getComputedStyle(pre).wordBreak === "break-all") add("output-breaks-words", snippet(pre));
  }
  // Colours: "rgb(r, g, b)" or "rgba(r, g, b, a)", blended onto the page.
  const parse = text => { const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const v = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1}; };
  const page = parse(getComputedStyle(document.body).backgroundColor);
  const onPage = c => ({r: c.r * c.a + page.r * (1 - c.a), g: c.g * c.a + page.g * (1 - c.a),
                        b: c.b * c.a + page.b * (1 - c.a)});
  const luminance = c => { const f = x => { x /= 255;
    return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const contrast = c => { const [l1, l2] = [luminance(onPage(c)), luminance(page)];
    return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05); };
  for (const host of document.querySelectorAll("div.mermaid")) {
    const svg = host.shadowRoot && host.shadowRoot.querySelector("svg");
    if (!svg) continue;
    const natural = svg.viewBox.baseVal.width;
    seen.diagrams += 1;
    const width = svg.getBoundingClientRect().width;
    if (natural && width < 0.74 * natural) {
      add("diagram-shrunk", `${Math.round(width)} of ${Math.round(natural)} px`);
    }
    if (width > host.clientWidth + 1 && !scrolls(host)) add("diagram-clipped", `${Math.round(width)} px`);
    // The arrowheads that lines actually use.
    const used = new Set();
    for (const el of svg.querySelectorAll("[marker-end], [marker-start]")) {
      for (const attr of ["marker-end", "marker-start"]) {
        const m = (el.getAttribute(attr) || "").match(/#([^)"']+)/);
        if (m) used.add(m[1]);
      }
    }
    for (const id of used) {
      const marker = svg.querySelector(`marker[id="${CSS.escape(id)}"]`);
      const shape = marker && marker.querySelector("path, polygon, circle");
      if (!shape) continue;
      const style = getComputedStyle(shape);
      seen.arrowheads += 1;
      // A hollow head (class diagrams' inheritance triangle) shows its outline.
      const fill = parse(style.fill);
      const paint = fill && fill.a > 0 ? style.fill : style.stroke;
      const colour = parse(paint);
      if (colour && contrast(colour) < 3) {
        add("faint-arrowhead", `${id}: ${paint}, ${contrast(colour).toFixed(1)}:1`);
      }
    }
  }
  return {problems, seen};
}
"""


# -- the builds -------------------------------------------------------------

@dataclass
class Build:
    """The outcome of one `mkdocs build --strict`."""

    returncode: int
    output: str
    site_dir: Path
    seconds: float
    directory_urls: bool = True  # False for the offline copy: page.html, not page/
    # The lessons as they were when the build started: notebooks written
    # while the tests run (in another checkout's editor, say) are not in it.
    lessons: list = field(default_factory=list)
    notebooks: dict = field(default_factory=dict)  # lesson file name -> its bytes then

    def html_pages(self):
        """Every HTML page of the site, as paths relative to the site root."""
        return sorted(p.relative_to(self.site_dir).as_posix()
                      for p in self.site_dir.rglob("*.html"))

    def read(self, page):
        return (self.site_dir / page).read_text(encoding="utf-8")

    def lesson_page(self, lesson):
        stem = lesson.path.stem
        return f"notebooks/{stem}/index.html" if self.directory_urls else f"notebooks/{stem}.html"


#: Where a test build's notebook pages are kept between runs (see _notebook_cache()).
NOTEBOOK_CACHE_ROOT = ROOT / "build" / "test-site"
#: What the converted HTML of a notebook depends on besides its bytes and the
#: plugin's options (which mkdocs-jupyter's cache key covers already).
CONVERTERS = ("mkdocs-jupyter", "nbconvert", "mistune", "pygments", "jupyterlab_pygments")


def _shared_notebook_cache():
    """The folder kept between runs: one per set of converter versions."""
    import hashlib
    from importlib import metadata
    versions = []
    for name in CONVERTERS:
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:12]
    return NOTEBOOK_CACHE_ROOT / f"notebook-cache-{digest}"


def _copy_cache(source, target, *, prune):
    """Copy source's cache files into target, each by an atomic rename.

    A build reading target while this runs sees each file whole, old or new.
    With prune, target keeps no file that source lacks (evicted entries).
    """
    target.mkdir(parents=True, exist_ok=True)
    names = {path.name for path in source.glob("*.json")} if source.is_dir() else set()
    for name in names:
        partial = target / f".{name}.{os.getpid()}.partial"
        shutil.copyfile(source / name, partial)
        os.replace(partial, target / name)
    if prune:
        for path in target.glob("*.json"):
            if path.name not in names:
                path.unlink(missing_ok=True)


def mkdocs_build(site_dir, **settings):
    """Build the site into site_dir with these SOCKSERV_* settings (None: unset).

    The notebooks' HTML comes from mkdocs-jupyter's cache where a notebook has
    not changed since the last test build: each build works on a private copy
    of the shared cache (builds side by side, in this run or another, never
    read a half-written entry), which it then writes back.
    """
    private_cache = site_dir.parent / "notebook-cache"
    shared_cache = _shared_notebook_cache()
    _copy_cache(shared_cache, private_cache, prune=False)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", SOCKSERV_NOTEBOOK_CACHE=str(private_cache))
    for name, value in settings.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    found = lessons.find_lessons()
    notebooks = {lesson.filename: lesson.path.read_bytes() for lesson in found}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        _copy_cache(private_cache, shared_cache, prune=True)
    return Build(proc.returncode, proc.stdout + proc.stderr, site_dir, seconds,
                 directory_urls=settings.get("SOCKSERV_OFFLINE") is None, lessons=found,
                 notebooks=notebooks)


class SubPathHandler(http.server.SimpleHTTPRequestHandler):
    """Serve the site folder at SUB_PATH only; anything else is 404, as on a real host."""

    def send_head(self):
        if not self.path.startswith(SUB_PATH):
            self.send_error(404, "outside the site's sub-path")
            return None
        self.path = "/" + self.path[len(SUB_PATH):]
        return super().send_head()

    def log_message(self, format, *args):
        pass  # the tests report problems themselves


class SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread


class TagWatcher(HTMLParser):
    """Collect, from one HTML page, what loads from where and what sits inside what."""

    def __init__(self):
        super().__init__()
        self.loads = []  # URLs of scripts, stylesheets, images, frames
        self.links = []  # href of every <a>
        self.solutions_outside_details = 0
        self.solutions = 0
        self._details = []  # for each open <details>: is it a closed solution box?

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.loads.append(attrs["src"])
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or ""):
            self.loads.append(attrs.get("href") or "")
        elif tag in ("img", "iframe", "audio", "video", "source", "embed") and attrs.get("src"):
            self.loads.append(attrs["src"])
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "details":
            classes = (attrs.get("class") or "").split()
            self._details.append("sockserv-solution" in classes and "open" not in attrs)
        if "celltag_solution" in (attrs.get("class") or "").split():
            self.solutions += 1
            if not any(self._details):
                self.solutions_outside_details += 1

    def handle_endtag(self, tag):
        if tag == "details" and self._details:
            self._details.pop()


def watch(build, page):
    watcher = TagWatcher()
    watcher.feed(build.read(page))
    return watcher


def no_browser(reason):
    if REQUIRE_BROWSER:
        pytest.fail(f"browser checks cannot run: {reason} "
                    "(SOCKSERV_REQUIRE_BROWSER=1 makes that a failure)", pytrace=False)
    pytest.skip(f"browser checks SKIPPED: {reason}")


@contextlib.contextmanager
def launch_browser():
    """Chromium, for the browser tests of one file; skips (or fails, see REQUIRE_BROWSER) without it."""
    if not CHROMIUM.exists():
        no_browser(f"Chromium not found at {CHROMIUM} — apt-get install chromium")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        no_browser(f"Playwright is not installed ({exc})")
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                  args=CHROMIUM_ARGS, timeout=30_000)
        except PlaywrightError as exc:
            first_line = str(exc).strip().splitlines()[0]
            no_browser(f"Chromium at {CHROMIUM} could not start: {first_line}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def new_context(browser, width=DESKTOP, scheme="light"):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context


@dataclass
class Visit:
    """What happened while one page was open in the browser."""

    page: str
    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)
    foreign_requests: list = field(default_factory=list)
    requested: list = field(default_factory=list)
    diagrams: int = 0  # <pre class="mermaid"> blocks in the built HTML
    problems: dict = field(default_factory=dict)  # check -> what went wrong
    layout: dict = field(default_factory=dict)  # variant -> LAYOUT_PROBLEMS' {check: examples}
    seen: dict = field(default_factory=dict)  # variant -> LAYOUT_PROBLEMS' counts
    solutions: int = 0  # elements tagged solution
    download_status: int = None
    reached_by_click: bool = False  # from the previous page, through its navigation


def count_diagrams(build, name):
    """How many Mermaid diagrams the built page has (its <pre class="mermaid"> blocks)."""
    return len(re.findall(r'<pre class="mermaid"', build.read(name)))


class Recorder:
    """Attach to a Playwright page; record errors and every request into a Visit.

    A request is foreign if it goes to another host, or (served over HTTP)
    leaves the site's folder: outside the sub-path, or for file://, outside
    the offline copy.  ``visit`` may be replaced while the page stays open
    (one Visit per page reached by navigation).
    """

    #: Quiet for this long, with no request in flight: the page has stopped loading.
    QUIET_SECONDS = 0.15

    def __init__(self, page, visit, site_url):
        self.visit = visit
        self.site = urlsplit(site_url)
        self.in_flight = set()
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.visit.page_errors.append(str(error)))
        page.on("request", self.request)
        page.on("requestfailed", self.request_failed)
        page.on("requestfinished", self.request_finished)
        page.on("response", self.response)

    def console(self, message):
        if message.type == "error":
            self.visit.console_errors.append(message.text)

    def request(self, request):
        url = urlsplit(request.url)
        self.in_flight.add(request)
        self.visit.requested.append(request.url)
        if url.scheme in ("data", "blob", "about"):
            return
        same_place = (url.scheme == self.site.scheme and url.netloc == self.site.netloc
                      and url.path.startswith(self.site.path.rsplit("/", 1)[0] + "/"))
        if not same_place:
            self.visit.foreign_requests.append(request.url)

    def request_finished(self, request):
        self.in_flight.discard(request)

    def request_failed(self, request):
        self.in_flight.discard(request)
        self.visit.failed_requests.append(f"{request.url} ({request.failure})")

    def response(self, response):
        if response.status >= 400:
            self.visit.failed_requests.append(f"{response.url} (HTTP {response.status})")

    def wait_until_quiet(self, page, timeout=BROWSER_TIMEOUT_MS / 1000):
        """Wait until no request is in flight and none starts for QUIET_SECONDS.

        Late requests (the search index, the favicon) start as the page loads;
        by the time the checks of a visit are done they have begun, and this
        lets them finish, so they are checked too.  (Playwright's "networkidle"
        waits 500 ms of silence per page for the same.)
        """
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            if self.in_flight:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.QUIET_SECONDS:
                return
            page.wait_for_timeout(25)  # lets Playwright deliver the page's events
        self.visit.problems["load"] = f"requests still in flight after {timeout} s: " + \
            ", ".join(sorted(request.url for request in self.in_flight))


#: In the page: {hosts, undrawn, hidden} of its diagrams: how many there are, how many
#: lack a drawn <svg> (none, Mermaid's error picture, or no size), how many a reader
#: cannot see (hidden by CSS, or of no size).
DIAGRAM_STATE = """() => {
  const hosts = [...document.querySelectorAll('div.mermaid')];
  const undrawn = hosts.filter(host => {
    const svg = host.shadowRoot && host.shadowRoot.querySelector('svg');
    if (!svg || svg.getAttribute('aria-roledescription') === 'error') return true;
    const drawn = svg.getBoundingClientRect();
    return drawn.width === 0 || drawn.height === 0;
  }).length;
  const hidden = hosts.filter(host => {
    const box = host.getBoundingClientRect();
    return !host.checkVisibility({checkVisibilityCSS: true}) || box.width === 0 || box.height === 0;
  }).length;
  return {hosts: hosts.length, undrawn, hidden};
}"""


def check_diagrams(page, visit):
    """Wait for Material to draw every diagram; each must be a visible <svg> with a size.

    Waited for, not looked at once: right after a page is swapped in, a diagram
    can exist for a moment before it has its size (seen on a busy machine).
    """
    try:
        page.wait_for_function(
            f"n => {{ const s = ({DIAGRAM_STATE})(); return s.hosts >= n && !s.undrawn && !s.hidden; }}",
            arg=visit.diagrams, timeout=BROWSER_TIMEOUT_MS)
        return
    except Exception:  # Playwright's TimeoutError: say what is wrong
        pass
    state = page.evaluate(DIAGRAM_STATE)
    if state["hosts"] < visit.diagrams:
        visit.problems["diagrams"] = f"{state['hosts']} of {visit.diagrams} drawn"
    else:
        visit.problems["diagrams"] = (f"{state['undrawn']} without a proper <svg>, "
                                      f"{state['hidden']} not visible")


#: Click every element given, as a reader's click would (the <summary>'s own click
#: toggles its <details>), all in one step.
CLICK_EACH = "els => els.forEach(el => el.click())"


def check_solutions(page, visit):
    """Solutions: hidden at first; visible once their "Show solution" is clicked.

    Every "Show solution" must itself be in sight, then each is clicked in
    the page (CLICK_EACH), all at once: Playwright's click scrolls each into
    view and waits for the page to settle first, about 0.3 s of CPU per click
    on a lesson page (27 clicks: 7.5 s of the lesson visits' 31 s).
    """
    cells = page.locator(".celltag_solution")
    visit.solutions = cells.count()
    if not visit.solutions:
        return
    before = cells.evaluate_all(VISIBILITY)
    summaries = page.locator("details.sockserv-solution > summary")
    toggles = summaries.evaluate_all(VISIBILITY)
    summaries.evaluate_all(CLICK_EACH)
    after = cells.evaluate_all(VISIBILITY)
    if toggles["hidden"] or not toggles["shown"]:
        visit.problems["solutions"] = (
            f"{toggles['hidden']} \"Show solution\" not visible, {toggles['shown']} visible")
    elif before["shown"] or after["hidden"] or not after["shown"]:
        visit.problems["solutions"] = (
            f"{before['shown']} of {visit.solutions} visible before clicking, "
            f"{after['hidden']} hidden after")


def check_download(page, visit, context):
    link = page.locator("a.sockserv-download")
    if link.count() != 1:
        visit.problems["download"] = f"{link.count()} download links"
        return
    url = urljoin(page.url, link.get_attribute("href"))
    response = context.request.get(url)
    visit.download_status = response.status
    try:
        cells = json.loads(response.body())["cells"]
    except (ValueError, KeyError) as exc:
        visit.problems["download"] = f"{url}: not a notebook ({exc!r})"
        return
    finally:
        response.dispose()
    if response.status != 200 or not cells:
        visit.problems["download"] = f"{url}: HTTP {response.status}, {len(cells)} cells"


def current_scheme(page):
    """"light" or "dark": the scheme the page shows now."""
    shown = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
    return next(scheme for scheme, value in SCHEMES.items() if value == shown)


def variants_from(scheme):
    """Every VARIANT, in the order that switches the scheme once: this scheme's first.

    A switch restyles the whole page (about 0.3 s of CPU on a lesson page),
    a resize much less; each page ends in the other scheme at DESKTOP width,
    which Material keeps as the reader's choice, so the next page opens in it
    and starts there.
    """
    other = "dark" if scheme == "light" else "light"
    names = {(width, variant_scheme): name for name, width, variant_scheme in VARIANTS}
    order = [(DESKTOP, scheme), (PHONE, scheme), (PHONE, other), (DESKTOP, other)]
    return [(names[key], *key) for key in order]


def set_scheme(page, scheme):
    """Switch the page to the light or dark scheme with the header's toggle, as a reader does.

    The toggle must be in sight; it is clicked in the page (CLICK_EACH), which
    costs a fraction of Playwright's click (see check_solutions).
    """
    if current_scheme(page) != scheme:
        toggle = page.locator(f'[data-md-component="palette"] label[title="Switch to {scheme} mode"]')
        seen = toggle.evaluate_all(VISIBILITY)
        assert seen == {"shown": 1, "hidden": 0}, f'the "Switch to {scheme} mode" toggle: {seen}'
        toggle.evaluate_all(CLICK_EACH)
        page.wait_for_function(
            f"document.body.getAttribute('data-md-color-scheme') === '{SCHEMES[scheme]}'")


def screenshot_path(variant, name):
    if not SCREENSHOTS:
        return None
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{variant}--{name.replace('/', '_').removesuffix('.html')}.png")


def visit_pages(context, build, names, base_url, *, lesson_checks):
    """Open each page in turn; check what a reader sees, in every VARIANT; return {page: Visit}.

    All in one tab, as a reader reading page after page: a tab of its own per
    page costs Chromium a new renderer process, and compiling the site's
    scripts again, each time (the ten lesson pages: about 22 s of CPU in a tab
    each, 12 s in one, on the course's 2-core machine).  Each page is still a
    full load of its own, and the tab is quiet (no request in flight) before
    the next one, so that nothing of one page is counted as another's.  A
    page opens in the scheme the one before ended in (the reader's stored
    choice: light for the first, then dark, light, ...); the tab ends light.
    """
    page = context.new_page()
    try:
        if page.viewport_size["width"] != DESKTOP:
            page.set_viewport_size({"width": DESKTOP, "height": 900})
        recorder = Recorder(page, None, base_url)
        visits = {name: _visit(page, recorder, context, build, name, base_url,
                               lesson_checks=lesson_checks)
                  for name in names}
        if visits and current_scheme(page) != "light":
            set_scheme(page, "light")  # the context's stored choice, for whoever uses it next
            recorder.wait_until_quiet(page)
        return visits
    finally:
        page.close()


def _visit(page, recorder, context, build, name, base_url, *, lesson_checks):
    """Load one page into the tab and look at it in every VARIANT: its Visit.

    Ends when the page makes no more requests, so that late ones (the search
    index, the favicon) are checked too, and are this page's.
    """
    visit = recorder.visit = Visit(name, diagrams=count_diagrams(build, name))
    response = page.goto(urljoin(base_url, name), wait_until="load")
    if response is not None and response.status != 200 and not base_url.startswith("file:"):
        visit.problems["load"] = f"HTTP {response.status}"
    if lesson_checks:
        check_solutions(page, visit)
        check_download(page, visit, context)
    # Unfold whatever else is folded: from here on, everything must show.
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    if visit.diagrams:
        check_diagrams(page, visit)
    if name.startswith("notebooks/"):
        outputs = page.locator(".jp-OutputArea-output")
        hidden = outputs.evaluate_all(VISIBILITY)["hidden"]
        if hidden:
            visit.problems["outputs"] = f"{hidden} of {outputs.count()} outputs not visible"
    for variant, width, scheme in variants_from(current_scheme(page)):
        if page.viewport_size["width"] != width:
            page.set_viewport_size({"width": width, "height": 900})
        set_scheme(page, scheme)
        findings = page.evaluate(LAYOUT_PROBLEMS, width == PHONE)
        visit.layout[variant], visit.seen[variant] = findings["problems"], findings["seen"]
        shot = screenshot_path(variant, name)
        if shot:
            page.screenshot(path=shot, full_page=True)
    recorder.wait_until_quiet(page)
    return visit


# -- checks of the built files that both builds get ---------------------------

def remote_resources(build):
    """{page: [URLs]} of what each page loads from another host (nothing, if all is well)."""
    offenders = {}
    for page in build.html_pages():
        remote = [url for url in watch(build, page).loads
                  if urlsplit(url).scheme not in ("", "data") or url.startswith("//")]
        if remote:
            offenders[page] = remote
    return offenders


def resolves_to(page, href, target):
    """Does href, on this page (site-relative path), point at the site file target?"""
    base = "http://site/" + page
    return urlsplit(urljoin(base, href)).path == "/" + target


def pages_without_course_download(build):
    """The home page and lesson pages that do not link to the course's zip."""
    pages = ["index.html"] + [build.lesson_page(lesson) for lesson in build.lessons]
    return [page for page in pages
            if not any(resolves_to(page, href, COURSE_ZIP) for href in watch(build, page).links)]


def build_warnings(build):
    return [line for line in build.output.splitlines() if "WARNING" in line]


def report(visits, attribute):
    """{page: what was recorded} for the visits where ``attribute`` is not empty."""
    return {name: getattr(v, attribute) for name, v in visits.items() if getattr(v, attribute)}


def problems(visits, check):
    """{page: what went wrong} for the visits where ``check`` found a problem."""
    return {name: v.problems[check] for name, v in visits.items() if check in v.problems}


# -- what every visited page must pass ------------------------------------------

#: The layout checks of LAYOUT_PROBLEMS, one test each.
LAYOUT_CHECKS = ["page-scrolls-sideways", "code-clipped", "code-bleeds", "copy-covers-code",
                 "wide-prompt", "output-breaks-words", "diagram-shrunk", "diagram-clipped",
                 "faint-arrowhead"]


class PageChecks:
    """The checks of every page visited in the browser, as tests.

    A test file subclasses it (``class TestPages(PageChecks)``) and provides a
    ``visits`` fixture, ``{page: Visit}``, each visited in every VARIANT.
    ``SEEN`` names what the layout checks must have had something of to judge,
    summed over those pages, in every variant (so that a check finding nothing
    wrong is known to have looked).
    """

    SEEN = ()

    def test_pages_have_no_console_or_page_errors(self, visits):
        assert report(visits, "console_errors") == {}
        assert report(visits, "page_errors") == {}

    def test_no_request_fails(self, visits):
        assert report(visits, "failed_requests") == {}
        assert problems(visits, "load") == {}

    def test_nothing_is_fetched_from_another_host_or_outside_the_sub_path(self, visits):
        assert report(visits, "foreign_requests") == {}

    def test_every_diagram_is_drawn(self, visits):
        assert [v for v in visits.values() if v.diagrams], "these pages should have diagrams"
        assert problems(visits, "diagrams") == {}

    @pytest.mark.parametrize("check", LAYOUT_CHECKS)
    def test_layout_reads_well_at_every_size_and_scheme(self, visits, check):
        """See LAYOUT_PROBLEMS for what each check looks for."""
        found = {f"{variant} {name}": findings[check]
                 for name, v in visits.items() for variant, findings in v.layout.items()
                 if check in findings}
        assert found == {}

    def test_layout_checks_look_at_something(self, visits):
        names = [variant for variant, _, _ in VARIANTS]
        totals = {variant: {thing: sum(v.seen[variant][thing] for v in visits.values())
                            for thing in self.SEEN}
                  for variant in names}
        assert {variant: [thing for thing, n in seen.items() if n == 0]
                for variant, seen in totals.items()} == {variant: [] for variant in names}

    def test_mermaid_is_fetched_only_by_pages_with_a_diagram(self, visits):
        fetched = {name: any(url.endswith("/" + MERMAID_SCRIPT) for url in v.requested)
                   for name, v in visits.items()}
        wanted = {name: bool(v.diagrams) for name, v in visits.items()}
        assert fetched == wanted
