"""The course website: it builds without a warning, and every page works offline.

Two builds per test session, each once (``mkdocs build --strict`` into a
temporary folder):

* the site as published: built for, and served at, a sub-path
  (``http://127.0.0.1:PORT/some-course/``, as on a project's GitHub Pages),
  with a repository address set (SOCKSERV_REPO_URL);
* the offline copy (SOCKSERV_OFFLINE=true, what ``make offline`` builds),
  with no repository address, opened from ``file://``.

The first tests read the built files; the rest open every page in a real
browser, Debian's Chromium driven by Playwright, and check what a reader
would see, at 1280 px and at a phone's 390 px, in the light and the dark
scheme:

* no console error, no page error, no failed request, nothing fetched from
  another host or from outside the sub-path;
* every Mermaid diagram drawn (an <svg> with a size, visible), readable (not
  shrunk below 3/4 of its natural size; wider ones scroll in their box), its
  arrowheads visible against the page, and the 3.5 MB Mermaid script
  fetched only by pages that have a diagram;
* code cells: a long line scrolls sideways inside its box, the copy button
  covers no code, the page itself never scrolls sideways, and on a phone no
  "In [n]:" column takes the width;
* on lesson pages: every cell output visible, worked solutions hidden until
  "Show solution" is clicked, and a download link that serves the notebook;
* instant navigation (no full page load) still draws diagrams, offline;
* the file:// copy: navigation, a lesson, its diagrams, and search.

Without Chromium at /usr/bin/chromium the browser tests are skipped, saying so;
with SOCKSERV_REQUIRE_BROWSER=1 (as .ci/run sets it) they fail instead.
SOCKSERV_SITE_SCREENSHOTS=DIR saves a screenshot of every page visited, in
every variant, into DIR, to look at.
"""

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
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
# redraws nothing on either, so one load sees all four).
DESKTOP, PHONE = 1280, 390
VARIANTS = [("desktop-light", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"),
            ("phone-dark", PHONE, "dark"), ("phone-light", PHONE, "light")]
SCHEMES = {"light": "default", "dark": "slate"}  # Material's data-md-color-scheme

# The first test to need a site pays for its build and, for the browser
# tests, for visiting every page (about 5 s per build and 20 s of visits on
# an idle 2-core machine; several times that on a busy one).  The limits leave room for a busy
# machine; they stop a hang, they do not measure speed.
pytestmark = pytest.mark.timeout(600)
BUILD_TIMEOUT = 240  # seconds
BROWSER_TIMEOUT_MS = 30_000  # any one browser step: load a page, draw its diagrams
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


def _mkdocs_build(site_dir, **settings):
    """Build the site into site_dir with these SOCKSERV_* settings (None: unset)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               # A private mkdocs-jupyter cache: builds running side by side
               # (another test run, `make serve`) must not read each other's
               # half-written files.
               SOCKSERV_NOTEBOOK_CACHE=str(site_dir.parent / "notebook-cache"))
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
    return Build(proc.returncode, proc.stdout + proc.stderr, site_dir,
                 time.perf_counter() - started,
                 directory_urls=settings.get("SOCKSERV_OFFLINE") is None, lessons=found,
                 notebooks=notebooks)


class _SubPathHandler(http.server.SimpleHTTPRequestHandler):
    """Serve the site folder at SUB_PATH only; anything else is 404, as on a real host."""

    def send_head(self):
        if not self.path.startswith(SUB_PATH):
            self.send_error(404, "outside the site's sub-path")
            return None
        self.path = "/" + self.path[len(SUB_PATH):]
        return super().send_head()

    def log_message(self, format, *args):
        pass  # the tests report problems themselves


class _SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread


@pytest.fixture(scope="session")
def site_server(tmp_path_factory):
    """An HTTP server on 127.0.0.1, at a free port, for the folder the site is built into.

    It exists before the build because the build needs its address: Material's
    instant navigation works only where the site is served at its site_url.
    """
    site_dir = tmp_path_factory.mktemp("site-build") / "site"
    handler = functools.partial(_SubPathHandler, directory=str(site_dir))
    server = _SiteServer(("127.0.0.1", 0), handler)
    try:
        yield server, site_dir
    finally:
        server.server_close()


@pytest.fixture(scope="session")
def built(site_server):
    """The published site (sub-path, repository set), built once per session."""
    server, site_dir = site_server
    host, port = server.server_address[:2]
    return _mkdocs_build(site_dir, SOCKSERV_SITE_URL=f"http://{host}:{port}{SUB_PATH}",
                         SOCKSERV_REPO_URL=REPO_URL, SOCKSERV_OFFLINE=None)


@pytest.fixture(scope="session")
def site(built):
    """The built site; fails (once per test) if the build itself failed."""
    if built.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{built.output}", pytrace=False)
    return built


@pytest.fixture(scope="session")
def offline_built(tmp_path_factory):
    """The file:// copy (what `make offline` builds), no repository set; once per session."""
    site_dir = tmp_path_factory.mktemp("site-offline") / "site-offline"
    return _mkdocs_build(site_dir, SOCKSERV_OFFLINE="true", SOCKSERV_REPO_URL=None,
                         SOCKSERV_SITE_URL=None)


@pytest.fixture(scope="session")
def offline_site(offline_built):
    if offline_built.returncode != 0:
        pytest.fail(f"the offline build failed:\n{offline_built.output}", pytrace=False)
    return offline_built


def _warnings(build):
    return [line for line in build.output.splitlines() if "WARNING" in line]


def test_site_builds_without_warnings(built):
    assert built.returncode == 0, built.output
    assert _warnings(built) == []
    print(f"mkdocs build --strict took {built.seconds:.1f} s")


def test_offline_copy_builds_without_warnings(offline_built):
    assert offline_built.returncode == 0, offline_built.output
    assert _warnings(offline_built) == []
    print(f"offline build took {offline_built.seconds:.1f} s")


def test_every_lesson_is_a_page_in_the_nav_in_order(site):
    found = site.lessons
    home = site.read("index.html")
    nav_links = re.findall(r'href="(notebooks/[^"/]+/)"', home)
    expected = [f"notebooks/{lesson.path.stem}/" for lesson in found]
    # Each lesson appears in the nav; dict.fromkeys drops repeats, keeps order.
    assert list(dict.fromkeys(nav_links)) == expected
    # The home page lists them too, in the article itself.
    article = home[home.index("<article"):home.index("</article>")]
    assert re.findall(r'<li><a href="(notebooks/[^"/]+/)">', article) == expected
    for lesson in found:
        page = site.read(site.lesson_page(lesson))
        assert f"<title>{lesson.title} - " in page
        copy = site.site_dir / "notebooks" / lesson.path.stem / lesson.filename
        # The notebook as it was when the build started, or (edited while the
        # build ran) as it is now: a faithful copy either way.
        assert copy.read_bytes() in (site.notebooks[lesson.filename],
                                     lesson.path.read_bytes()), lesson.filename


# -- the API page -----------------------------------------------------------

def test_api_page_documents_threading_mixin_process_request(site):
    api = site.read("api/index.html")
    assert re.search(r'id="sockserv\.[\w.]*ThreadingMixIn\.process_request"', api)


def test_api_page_shows_no_restructuredtext_literal_markers(site):
    """A docstring's "the classes::" is reStructuredText; in Markdown it shows as "::"."""
    api = site.read("api/index.html")
    text = re.sub(r"<(pre|code)\b.*?</\1>", "", api, flags=re.S)  # code may say "::"
    paragraphs = re.findall(r"<p>(.*?)</p>", text, flags=re.S)
    assert [p[-60:] for p in paragraphs if re.search(r"::\s*$", p)] == []


def _api_search_titles(build):
    index = json.loads(build.read("search/search_index.json"))
    prefix = "api/"
    return [re.sub(r"<[^>]+>", "", doc["title"]) for doc in index["docs"]
            if doc["location"].startswith(prefix) and "#" in doc["location"]]


def test_api_search_results_name_their_class(site):
    """Three servers define shutdown_request(): each search result says whose."""
    titles = _api_search_titles(site)
    repeated = sorted({t for t in titles if titles.count(t) > 1})
    assert repeated == []
    shutdown_request = sorted(t for t in titles if "shutdown_request(" in t)
    assert shutdown_request == ["BaseServer.shutdown_request(request)",
                                "TCPServer.shutdown_request(request)",
                                "UDPServer.shutdown_request(request)"]


# -- pages, ids and links ---------------------------------------------------

class _TagWatcher(HTMLParser):
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


def _watch(build, page):
    watcher = _TagWatcher()
    watcher.feed(build.read(page))
    return watcher


@pytest.mark.parametrize("which", ["site", "offline_site"])
def test_no_page_links_a_resource_from_another_host(which, request):
    build = request.getfixturevalue(which)
    offenders = {}
    for page in build.html_pages():
        remote = [url for url in _watch(build, page).loads
                  if urlsplit(url).scheme not in ("", "data") or url.startswith("//")]
        if remote:
            offenders[page] = remote
    assert offenders == {}


def test_every_in_page_link_has_its_target(site):
    """The table of contents (and any "#id" link) points at a heading that exists.

    mkdocs-jupyter derives a notebook's contents from Markdown, which lost the
    code spans of headings such as "`shutdown()` versus `server_close()`"
    (link "#versus", heading id "shutdown-versus-server_close").
    """
    broken = {}
    for page in site.html_pages():
        text = site.read(page)
        ids = set(re.findall(r'\bid="([^"]+)"', text))
        links = set(re.findall(r'href="#([^"]+)"', text))
        missing = sorted(links - ids)
        if missing:
            broken[page] = missing
    assert broken == {}


def test_no_two_elements_on_a_page_share_an_id(site):
    """Two "Solution to exercise N" (or two "Solution") headings must not share an id."""
    repeated = {}
    for page in site.html_pages():
        ids = re.findall(r'\bid="([^"]+)"', site.read(page))
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            repeated[page] = twice
    assert repeated == {}


def test_repeated_heading_ids_are_made_unique():
    """The hook that guarantees it: later copies get -2, -3, permalinks follow."""
    import mkdocs_hooks  # tools/mkdocs_hooks.py
    html = ('<h4 id="solution">Solution<a class="anchor-link" href="#solution">¶</a></h4>'
            '<div id="solution-2"></div>'
            '<h4 id="solution">Solution<a class="anchor-link" href="#solution">¶</a></h4>'
            '<h4 id="solution">Solution<a class="anchor-link" href="#solution">¶</a></h4>'
            '<h2 id="other">Other</h2>')
    result = mkdocs_hooks.unique_heading_ids(html)
    assert re.findall(r'<h\d id="([^"]+)"', result) == ["solution", "solution-3", "solution-4",
                                                          "other"]
    assert re.findall(r'href="#([^"]+)"', result) == ["solution", "solution-3", "solution-4"]
    assert mkdocs_hooks.unique_heading_ids(result) == result


def test_solution_cells_are_inside_closed_details(site):
    """Statically, without a browser: every cell tagged solution is folded away."""
    for lesson in site.lessons:
        assert _watch(site, site.lesson_page(lesson)).solutions_outside_details == 0, \
            lesson.filename


def test_pytest_never_collects_the_built_site(pytestconfig):
    """The site keeps copies of the notebooks; nbval must check each notebook once."""
    testpaths = [(ROOT / path).resolve() for path in pytestconfig.getini("testpaths")]
    assert testpaths, "pyproject.toml should list testpaths"
    for site_dir in ((ROOT / "site").resolve(), (ROOT / "site-offline").resolve()):
        for path in testpaths:
            assert path != ROOT and site_dir != path and site_dir not in path.parents
            assert path not in site_dir.parents


# -- the course download and the repository ---------------------------------

def _resolves_to(page, href, target, directory_urls=True):
    """Does href, on this page (site-relative path), point at the site file target?"""
    base = "http://site/" + page
    return urlsplit(urljoin(base, href)).path == "/" + target


def test_course_zip_holds_what_a_learner_needs_and_nothing_else(site):
    with zipfile.ZipFile(site.site_dir / COURSE_ZIP) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
        readme = archive.read(f"{course_zip.FOLDER}/README.md")
    assert readme == (ROOT / "README.md").read_bytes()
    assert all(name.startswith(course_zip.FOLDER + "/") for name in names)
    inside = {name[len(course_zip.FOLDER) + 1:] for name in names}
    needed = {"README.md", "Makefile", "pyproject.toml", "conftest.py", "requirements.txt", "constraints.txt",
              "mkdocs.yml", "src/sockserv/__init__.py", "tools/lessons.py",
              "tools/mkdocs_hooks.py", "tools/course_zip.py", "tests/test_site.py",
              "notebooks/sanitize.cfg", "docs/index.md"}
    needed |= {f"notebooks/{lesson.filename}" for lesson in site.lessons}
    assert needed - inside == set()
    leftovers = [name for name in inside
                 if re.search(r"(^|/)(\.venv[^/]*|site|site-offline|\.cache|__pycache__|"
                              r"\.git|\.pytest_cache|[^/]*\.egg-info)/", name)
                 or name.endswith((".pyc", ".pyo"))]
    assert leftovers == []
    # Everything in it is a course file by the module's own rule.  (Not an
    # equality with course_files() now: files added since the build differ.)
    assert [name for name in inside if not course_zip.is_course_file(name)] == []


def test_course_files_outside_git_skip_venvs_builds_and_caches(tmp_path):
    """An unpacked copy (no .git): the walk takes the course, not what running it left."""
    for name in ["README.md", "Makefile", "requirements.txt", "src/sockserv/__init__.py",
                 "notebooks/01-x.ipynb", ".venv/lib/site.py", "site/index.html",
                 "site-offline/index.html", "src/sockserv/__pycache__/x.cpython-311.pyc",
                 ".cache/mkdocs-jupyter/x", "notes.txt", "src/sockserv.egg-info/PKG-INFO"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert course_zip.course_files(tmp_path) == [
        "Makefile", "README.md", "notebooks/01-x.ipynb", "requirements.txt",
        "src/sockserv/__init__.py"]


@pytest.mark.parametrize("which", ["site", "offline_site"])
def test_home_and_lesson_pages_link_to_the_course_download(which, request):
    build = request.getfixturevalue(which)
    pages = ["index.html"] + [build.lesson_page(lesson) for lesson in build.lessons]
    without = [page for page in pages
               if not any(_resolves_to(page, href, COURSE_ZIP)
                          for href in _watch(build, page).links)]
    assert without == []
    assert (build.site_dir / COURSE_ZIP).is_file()


def test_repository_set_shows_its_link_and_the_clone_command(site):
    home = site.read("index.html")
    assert re.search(r'<a href="%s"[^>]*class="md-source"' % re.escape(REPO_URL), home)
    assert f"git clone {REPO_URL}\n" in re.sub(r"<[^>]+>", "", home)  # the code block's text
    for lesson in site.lessons:
        assert f'href="{REPO_URL}"' in site.read(site.lesson_page(lesson))


def test_repository_unset_points_nowhere(offline_site):
    """No SOCKSERV_REPO_URL: no repository link, no clone command, no made-up address."""
    found = {}
    for page in offline_site.html_pages():
        text = offline_site.read(page)
        hits = [what for what in ('class="md-source"', "git clone", "Go to repository",
                                  urlsplit(REPO_URL).netloc)
                if what in text.replace('<span class="w"> </span>', " ")]
        if hits:
            found[page] = hits
    assert found == {}


# -- the offline copy, statically -------------------------------------------

def test_offline_copy_has_search_index_and_local_shim(offline_site):
    assert (offline_site.site_dir / "search" / "search_index.js").is_file()
    shim = offline_site.site_dir / "assets" / "javascripts" / "iframe-worker" / "shim.js"
    assert shim.read_bytes() == (ROOT / "docs" / "assets" / "javascripts" / "iframe-worker"
                                 / "shim.js").read_bytes()
    for page in offline_site.html_pages():
        text = offline_site.read(page)
        assert "unpkg.com" not in text, page
        config = json.loads(re.search(
            r'<script id="__config" type="application/json">(.*?)</script>', text, re.S)[1])
        assert not [f for f in config["features"] if f.startswith("navigation.instant")], page
        assert any(url.endswith("iframe-worker/shim.js") for url in _watch(offline_site, page).loads)


# -- the browser ------------------------------------------------------------

@pytest.fixture(scope="session")
def site_url(site, site_server):
    """The built site's address (under SUB_PATH), served for the rest of the session."""
    server, _ = site_server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="site-server")
    thread.start()
    try:
        yield "http://%s:%d%s" % (*server.server_address[:2], SUB_PATH)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()


def _no_browser(reason):
    if REQUIRE_BROWSER:
        pytest.fail(f"browser checks cannot run: {reason} "
                    "(SOCKSERV_REQUIRE_BROWSER=1 makes that a failure)", pytrace=False)
    pytest.skip(f"browser checks SKIPPED: {reason}")


@pytest.fixture(scope="session")
def browser():
    """One Chromium for every browser test."""
    if not CHROMIUM.exists():
        _no_browser(f"Chromium not found at {CHROMIUM} — apt-get install chromium")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _no_browser(f"Playwright is not installed ({exc})")
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                  args=CHROMIUM_ARGS, timeout=30_000)
        except PlaywrightError as exc:
            first_line = str(exc).strip().splitlines()[0]
            _no_browser(f"Chromium at {CHROMIUM} could not start: {first_line}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def _new_context(browser, width=DESKTOP, scheme="light"):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context


@pytest.fixture(scope="session")
def browser_context(browser):
    """The desktop, light-scheme context (solutions, downloads, instant navigation)."""
    context = _new_context(browser)
    try:
        yield context
    finally:
        context.close()


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


class _Recorder:
    """Attach to a Playwright page; record errors and every request into a Visit.

    A request is foreign if it goes to another host, or (served over HTTP)
    leaves the site's folder: outside the sub-path, or for file://, outside
    the offline copy.
    """

    def __init__(self, page, visit, site_url):
        self.visit = visit
        self.site = urlsplit(site_url)
        page.on("console", self.console)
        page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
        page.on("request", self.request)
        page.on("requestfailed",
                lambda request: visit.failed_requests.append(f"{request.url} ({request.failure})"))
        page.on("response", self.response)

    def console(self, message):
        if message.type == "error":
            self.visit.console_errors.append(message.text)

    def request(self, request):
        url = urlsplit(request.url)
        self.visit.requested.append(request.url)
        if url.scheme in ("data", "blob", "about"):
            return
        same_place = (url.scheme == self.site.scheme and url.netloc == self.site.netloc
                      and url.path.startswith(self.site.path.rsplit("/", 1)[0] + "/"))
        if not same_place:
            self.visit.foreign_requests.append(request.url)

    def response(self, response):
        if response.status >= 400:
            self.visit.failed_requests.append(f"{response.url} (HTTP {response.status})")


def _check_diagrams(page, visit):
    """Wait for Material to draw every diagram; each must be an <svg> with a size."""
    try:
        page.wait_for_function("n => document.querySelectorAll('div.mermaid').length >= n",
                               arg=visit.diagrams, timeout=BROWSER_TIMEOUT_MS)
    except Exception as exc:  # Playwright's TimeoutError
        drawn = page.evaluate("document.querySelectorAll('div.mermaid').length")
        visit.problems["diagrams"] = f"{drawn} of {visit.diagrams} drawn ({type(exc).__name__})"
        return
    undrawn = page.evaluate("""() => [...document.querySelectorAll('div.mermaid')].filter(d => {
        const svg = d.shadowRoot && d.shadowRoot.querySelector('svg');
        if (!svg || svg.getAttribute('aria-roledescription') === 'error') return true;
        const box = svg.getBoundingClientRect();
        return box.width === 0 || box.height === 0;
    }).length""")
    hidden = page.locator("div.mermaid").evaluate_all(VISIBILITY)["hidden"]
    if undrawn or hidden:
        visit.problems["diagrams"] = f"{undrawn} without a proper <svg>, {hidden} not visible"


def _check_solutions(page, visit):
    """Solutions: hidden at first; visible once their "Show solution" is clicked."""
    cells = page.locator(".celltag_solution")
    visit.solutions = cells.count()
    if not visit.solutions:
        return
    before = cells.evaluate_all(VISIBILITY)
    summaries = page.locator("details.sockserv-solution > summary")
    for index in range(summaries.count()):
        summaries.nth(index).click()
    after = cells.evaluate_all(VISIBILITY)
    if before["shown"] or after["hidden"] or not after["shown"]:
        visit.problems["solutions"] = (
            f"{before['shown']} of {visit.solutions} visible before clicking, "
            f"{after['hidden']} hidden after")


def _check_download(page, visit, context):
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


def _set_scheme(page, scheme):
    """Switch the page to the light or dark scheme with the header's toggle, as a reader does."""
    want = SCHEMES[scheme]
    if page.evaluate("document.body.getAttribute('data-md-color-scheme')") != want:
        page.locator(f'[data-md-component="palette"] label[title="Switch to {scheme} mode"]').click()
        page.wait_for_function(
            f"document.body.getAttribute('data-md-color-scheme') === '{want}'")


def _screenshot_path(variant, name):
    if not SCREENSHOTS:
        return None
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{variant}--{name.replace('/', '_').removesuffix('.html')}.png")


def _visit(context, build, name, base_url, *, lesson_checks, variants=VARIANTS[:1],
           prefix="", settle=True):
    """Open one page; check what a reader sees, in each variant; return the Visit.

    With settle, wait for the network to go idle, so that late requests (the
    search index, the favicon) are checked too.
    """
    visit = Visit(name, diagrams=len(re.findall(r'<pre class="mermaid"', build.read(name))))
    page = context.new_page()
    try:
        _Recorder(page, visit, base_url)
        page.set_viewport_size({"width": variants[0][1], "height": 900})
        response = page.goto(urljoin(base_url, name), wait_until="load")
        if response is not None and response.status != 200 and not base_url.startswith("file:"):
            visit.problems["load"] = f"HTTP {response.status}"
        if lesson_checks:
            _check_solutions(page, visit)
            _check_download(page, visit, context)
        # Unfold whatever else is folded: from here on, everything must show.
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        if visit.diagrams:
            _check_diagrams(page, visit)
        if name.startswith("notebooks/"):
            outputs = page.locator(".jp-OutputArea-output")
            hidden = outputs.evaluate_all(VISIBILITY)["hidden"]
            if hidden:
                visit.problems["outputs"] = f"{hidden} of {outputs.count()} outputs not visible"
        for variant, width, scheme in variants:
            page.set_viewport_size({"width": width, "height": 900})
            _set_scheme(page, scheme)
            findings = page.evaluate(LAYOUT_PROBLEMS, width == PHONE)
            visit.layout[variant], visit.seen[variant] = findings["problems"], findings["seen"]
            shot = _screenshot_path(prefix + variant, name)
            if shot:
                page.screenshot(path=shot, full_page=True)
        _set_scheme(page, "light")  # the stored choice: the next page starts light
        # From file:// there is no network to go idle: Chromium never reports it.
        if settle and not base_url.startswith("file:"):
            page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return visit


@pytest.fixture(scope="session")
def visits(site, site_url, browser_context):
    """Open every page once and look at it in every variant: {page: Visit}."""
    lesson_pages = {site.lesson_page(lesson) for lesson in site.lessons}
    return {name: _visit(browser_context, site, name, site_url,
                         lesson_checks=name in lesson_pages, variants=VARIANTS)
            for name in site.html_pages()}


def _report(visits, attribute):
    return {name: getattr(v, attribute) for name, v in visits.items() if getattr(v, attribute)}


def _problems(visits, check):
    return {name: v.problems[check] for name, v in visits.items() if check in v.problems}


def test_pages_have_no_console_or_page_errors(visits):
    assert _report(visits, "console_errors") == {}
    assert _report(visits, "page_errors") == {}


def test_no_request_fails(visits):
    assert _report(visits, "failed_requests") == {}
    assert _problems(visits, "load") == {}


def test_nothing_is_fetched_from_another_host_or_outside_the_sub_path(visits):
    assert _report(visits, "foreign_requests") == {}


def test_every_diagram_is_drawn(visits):
    with_diagrams = [v for v in visits.values() if v.diagrams]
    assert with_diagrams, "the site should have diagrams (docs/setup.md draws one)"
    assert _problems(visits, "diagrams") == {}


@pytest.mark.parametrize("check", [
    "page-scrolls-sideways", "code-clipped", "code-bleeds", "copy-covers-code", "wide-prompt",
    "output-breaks-words", "diagram-shrunk", "diagram-clipped", "faint-arrowhead"])
def test_layout_reads_well_at_every_size_and_scheme(visits, check):
    """See LAYOUT_PROBLEMS for what each check looks for."""
    found = {f"{variant} {name}": problems[check]
             for name, v in visits.items() for variant, problems in v.layout.items()
             if check in problems}
    assert found == {}


def test_layout_checks_look_at_something(site, visits):
    """The checks above had something to judge, in every variant: code cells,
    lines too long for a phone (so scrolling is what kept them readable),
    prompts, outputs, drawn diagrams and the arrowheads their lines use."""
    if not site.lessons:
        pytest.skip("no lesson notebooks yet")
    names = [variant for variant, _, _ in VARIANTS]
    totals = {variant: {thing: sum(v.seen[variant][thing] for v in visits.values())
                        for thing in ("code", "wideCode", "outputs", "diagrams", "arrowheads")}
              for variant in names}
    assert {variant: [thing for thing, n in seen.items() if n == 0]
            for variant, seen in totals.items()} == {variant: [] for variant in names}
    assert sum(v.seen["phone-light"]["prompts"] for v in visits.values()) > 0


def test_mermaid_is_fetched_only_by_pages_with_a_diagram(visits):
    fetched = {name: any(url.endswith("/" + MERMAID_SCRIPT) for url in v.requested)
               for name, v in visits.items()}
    wanted = {name: bool(v.diagrams) for name, v in visits.items()}
    assert fetched == wanted


def _lesson_visits(site, visits):
    return [visits[site.lesson_page(lesson)] for lesson in site.lessons]


def test_lesson_outputs_are_visible(site, visits):
    if not _lesson_visits(site, visits):
        pytest.skip("no lesson notebooks yet")
    assert _problems(visits, "outputs") == {}


def test_solutions_are_hidden_until_clicked(site, visits):
    lesson_visits = _lesson_visits(site, visits)
    if not any(v.solutions for v in lesson_visits):
        pytest.skip("no lesson has a cell tagged 'solution' yet")
    assert {v.page: v.problems["solutions"] for v in lesson_visits
            if "solutions" in v.problems} == {}


def test_lesson_pages_offer_the_notebook_for_download(site, visits):
    lesson_visits = _lesson_visits(site, visits)
    if not lesson_visits:
        pytest.skip("no lesson notebooks yet")
    assert {v.page: v.problems["download"] for v in lesson_visits
            if "download" in v.problems} == {}
    assert {v.page: v.download_status for v in lesson_visits} == {
        v.page: 200 for v in lesson_visits}


def test_course_download_is_served(site_url, browser_context):
    response = browser_context.request.get(urljoin(site_url, COURSE_ZIP))
    try:
        assert response.status == 200
        assert response.body()[:4] == b"PK\x03\x04"
    finally:
        response.dispose()


def test_instant_navigation_draws_diagrams_offline(site, site_url, browser_context, visits):
    """Click from page to page as a reader does: Material swaps content without a reload."""
    route = ["index.html"] + [name for name, v in visits.items()
                              if v.diagrams and name != "index.html" and name != "404.html"]
    page = browser_context.new_page()
    visit = Visit(" -> ".join(route))
    try:
        _Recorder(page, visit, site_url)
        page.goto(urljoin(site_url, route[0]), wait_until="load")
        page.evaluate("window.__sockservNoReload = true")
        for name in route[1:]:
            target = urljoin(site_url, name).removesuffix("index.html")
            hrefs = page.eval_on_selector_all(".md-nav--primary a.md-nav__link[href]",
                                              "links => links.map(a => a.href)")
            assert target in hrefs, f"no link to {target} in the navigation"
            page.locator(".md-nav--primary a.md-nav__link[href]").nth(hrefs.index(target)).click()
            page.wait_for_url(target)
            visit.diagrams = visits[name].diagrams
            _check_diagrams(page, visit)
            assert page.evaluate("window.__sockservNoReload === true"), "a full page load happened"
            assert visit.problems == {}, name
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.failed_requests == [] and visit.foreign_requests == []
    assert sum(url.endswith("/" + MERMAID_SCRIPT) for url in visit.requested) == 1


# -- the offline copy, from file:// ------------------------------------------

@pytest.fixture(scope="session")
def offline_url(offline_site):
    return offline_site.site_dir.as_uri() + "/"


@pytest.fixture(scope="session")
def offline_visits(offline_site, offline_url, browser):
    """Every page of the file:// copy, once, at desktop size (light).

    Except 404.html: a server shows it for a missing page, at any depth, so its
    links start at the site's root ("/some-course/..."); from file:// nothing
    ever shows it.
    """
    context = _new_context(browser)
    try:
        return {name: _visit(context, offline_site, name, offline_url, lesson_checks=False,
                             prefix="offline-")
                for name in offline_site.html_pages() if name != "404.html"}
    finally:
        context.close()


def test_offline_pages_load_everything_from_the_copy(offline_visits):
    visits = offline_visits
    assert _report(visits, "console_errors") == {}
    assert _report(visits, "page_errors") == {}
    assert _report(visits, "failed_requests") == {}
    assert _report(visits, "foreign_requests") == {}
    assert _problems(visits, "diagrams") == {}
    assert any(v.diagrams for v in offline_visits.values())


@contextlib.contextmanager
def _offline_home(browser, offline_url, visit):
    """A fresh page on the file:// copy's home page, recording into visit."""
    context = _new_context(browser)
    page = context.new_page()
    try:
        _Recorder(page, visit, offline_url)
        page.goto(offline_url + "index.html", wait_until="load")
        yield page
    finally:
        page.close()
        context.close()
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.failed_requests == [] and visit.foreign_requests == []


def test_offline_navigation_reaches_every_lesson_and_draws_its_diagrams(
        offline_site, offline_url, browser):
    visit = Visit("offline navigation")
    with _offline_home(browser, offline_url, visit) as page:
        for lesson in offline_site.lessons:
            target = offline_url + offline_site.lesson_page(lesson)
            page.locator(f'.md-nav--primary a.md-nav__link[href$="{lesson.path.stem}.html"]'
                         ).first.click()
            page.wait_for_url(target)
            visit.diagrams = offline_site.read(offline_site.lesson_page(lesson)).count(
                '<pre class="mermaid"')
            if visit.diagrams:
                _check_diagrams(page, visit)
            assert visit.problems == {}, lesson.filename


def test_offline_search_finds_results(offline_url, browser):
    """Search runs from file:// (the worker through the vendored iframe-worker shim)."""
    visit = Visit("offline search")
    with _offline_home(browser, offline_url, visit) as page:
        page.locator("input.md-search__input").click()
        page.keyboard.type("shutdown")
        page.wait_for_selector(".md-search-result__item")
        results = page.locator(".md-search-result__item").count()
        titles = page.locator(".md-search-result__item h1").all_inner_texts()
    assert results >= 3, titles
