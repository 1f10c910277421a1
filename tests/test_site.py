"""The course website: it builds without a warning, and every page works offline.

The site is built once per test session (``mkdocs build --strict`` into a
temporary folder).  The first tests read the built files; the rest open every
page in a real browser, Debian's Chromium driven by Playwright, served by
``http.server`` on 127.0.0.1 (port 0), and check what a reader would see:

* no console error, no page error, no failed request, nothing fetched from
  another host;
* every Mermaid diagram drawn (an <svg> with a size, visible), and the 3.5 MB
  Mermaid script fetched only by pages that have a diagram;
* on lesson pages: every cell output visible, worked solutions hidden until
  "Show solution" is clicked, and a download link that serves the notebook;
* instant navigation (no full page load) still draws diagrams, offline.

Without Chromium at /usr/bin/chromium the browser tests are skipped, saying so;
with SOCKSERV_REQUIRE_BROWSER=1 (as .ci/run sets it) they fail instead.
"""

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import lessons  # noqa: E402  (tools/lessons.py: the one list of lessons)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REQUIRE_BROWSER = os.environ.get("SOCKSERV_REQUIRE_BROWSER") == "1"

# The first test to need the site pays for the build and, for the browser
# tests, for visiting every page (about 5 s and 15 s on an idle 2-core
# machine).  The limits leave room for a busy machine; they stop a hang, they
# do not measure speed.
pytestmark = pytest.mark.timeout(300)
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


# -- the build --------------------------------------------------------------

@dataclass
class Build:
    """The outcome of one `mkdocs build --strict`."""

    returncode: int
    output: str
    site_dir: Path
    seconds: float

    def html_pages(self):
        """Every HTML page of the site, as paths relative to the site root."""
        return sorted(p.relative_to(self.site_dir).as_posix()
                      for p in self.site_dir.rglob("*.html"))

    def read(self, page):
        return (self.site_dir / page).read_text(encoding="utf-8")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
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
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = _SiteServer(("127.0.0.1", 0), handler)
    try:
        yield server, site_dir
    finally:
        server.server_close()


@pytest.fixture(scope="session")
def built(site_server):
    """The site, built once per session into a temporary folder."""
    server, site_dir = site_server
    host, port = server.server_address[:2]
    # A private mkdocs-jupyter cache: builds running side by side (another
    # test run, `make serve`) must not read each other's half-written files.
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               SOCKSERV_SITE_URL=f"http://{host}:{port}/",
               SOCKSERV_NOTEBOOK_CACHE=str(site_dir.parent / "notebook-cache"))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    return Build(proc.returncode, proc.stdout + proc.stderr, site_dir,
                 time.perf_counter() - started)


@pytest.fixture(scope="session")
def site(built):
    """The built site; fails (once per test) if the build itself failed."""
    if built.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{built.output}", pytrace=False)
    return built


def lesson_page(lesson):
    return f"notebooks/{lesson.path.stem}/index.html"


def test_site_builds_without_warnings(built):
    assert built.returncode == 0, built.output
    warnings = [line for line in built.output.splitlines() if "WARNING" in line]
    assert warnings == []
    print(f"mkdocs build --strict took {built.seconds:.1f} s")


def test_every_lesson_is_a_page_in_the_nav_in_order(site):
    found = lessons.find_lessons()
    home = site.read("index.html")
    nav_links = re.findall(r'href="(notebooks/[^"/]+/)"', home)
    expected = [f"notebooks/{lesson.path.stem}/" for lesson in found]
    # Each lesson appears in the nav; dict.fromkeys drops repeats, keeps order.
    assert list(dict.fromkeys(nav_links)) == expected
    # The home page lists them too, in the article itself.
    article = home[home.index("<article"):home.index("</article>")]
    assert re.findall(r'<li><a href="(notebooks/[^"/]+/)">', article) == expected
    for lesson in found:
        page = site.read(lesson_page(lesson))
        assert f"<title>{lesson.title} - " in page
        copy = site.site_dir / "notebooks" / lesson.path.stem / lesson.filename
        assert copy.read_bytes() == lesson.path.read_bytes()


def test_api_page_documents_threading_mixin_process_request(site):
    api = site.read("api/index.html")
    assert re.search(r'id="sockserv\.[\w.]*ThreadingMixIn\.process_request"', api)


class _TagWatcher(HTMLParser):
    """Collect, from one HTML page, what loads from where and what sits inside what."""

    def __init__(self):
        super().__init__()
        self.loads = []  # URLs of scripts, stylesheets, images, frames
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


def test_no_page_links_a_resource_from_another_host(site):
    offenders = {}
    for page in site.html_pages():
        watcher = _TagWatcher()
        watcher.feed(site.read(page))
        remote = [url for url in watcher.loads
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


def test_solution_cells_are_inside_closed_details(site):
    """Statically, without a browser: every cell tagged solution is folded away."""
    for lesson in lessons.find_lessons():
        watcher = _TagWatcher()
        watcher.feed(site.read(lesson_page(lesson)))
        assert watcher.solutions_outside_details == 0, lesson.filename


def test_pytest_never_collects_the_built_site(pytestconfig):
    """The site keeps copies of the notebooks; nbval must check each notebook once."""
    testpaths = [(ROOT / path).resolve() for path in pytestconfig.getini("testpaths")]
    site_dir = (ROOT / "site").resolve()
    assert testpaths, "pyproject.toml should list testpaths"
    for path in testpaths:
        assert path != ROOT and site_dir != path and site_dir not in path.parents
        assert path not in site_dir.parents


# -- the browser ------------------------------------------------------------

@pytest.fixture(scope="session")
def site_url(site, site_server):
    """The built site's address, served for the rest of the session."""
    server, _ = site_server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="site-server")
    thread.start()
    try:
        yield "http://%s:%d/" % server.server_address[:2]
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
def browser_context(site_url):
    """One Chromium and one browser context for every browser test."""
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
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS, timeout=30_000)
        except PlaywrightError as exc:
            first_line = str(exc).strip().splitlines()[0]
            _no_browser(f"Chromium at {CHROMIUM} could not start: {first_line}")
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(OPEN_SHADOW_ROOTS)
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            yield context
            context.close()
        finally:
            browser.close()
    finally:
        playwright.stop()


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
    solutions: int = 0  # elements tagged solution
    download_status: int = None


class _Recorder:
    """Attach to a Playwright page; record errors and every request into a Visit."""

    def __init__(self, page, visit, site_url):
        self.visit = visit
        self.host = urlsplit(site_url).netloc
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
        if url.scheme not in ("http", "https", "ws", "wss") or url.netloc != self.host:
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


@pytest.fixture(scope="session")
def visits(site, site_url, browser_context):
    """Open every page of the site once; what each visit saw, by page."""
    lesson_pages = {lesson_page(lesson) for lesson in lessons.find_lessons()}
    results = {}
    for name in site.html_pages():
        visit = Visit(name, diagrams=len(re.findall(r'<pre class="mermaid"', site.read(name))))
        page = browser_context.new_page()
        try:
            _Recorder(page, visit, site_url)
            response = page.goto(urljoin(site_url, name), wait_until="load")
            if response.status != 200:
                visit.problems["load"] = f"HTTP {response.status}"
            if name in lesson_pages:
                _check_solutions(page, visit)
                _check_download(page, visit, browser_context)
            # Unfold whatever else is folded: from here on, everything must show.
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            if visit.diagrams:
                _check_diagrams(page, visit)
            if name in lesson_pages:
                outputs = page.locator(".jp-OutputArea-output")
                hidden = outputs.evaluate_all(VISIBILITY)["hidden"]
                if hidden:
                    visit.problems["outputs"] = f"{hidden} of {outputs.count()} outputs not visible"
            # Late requests (search index, favicon) belong to this page too.
            page.wait_for_load_state("networkidle")
        finally:
            page.close()
        results[name] = visit
    return results


def _report(visits, attribute):
    return {name: getattr(v, attribute) for name, v in visits.items() if getattr(v, attribute)}


def test_pages_have_no_console_or_page_errors(visits):
    assert _report(visits, "console_errors") == {}
    assert _report(visits, "page_errors") == {}


def test_no_request_fails(visits):
    assert _report(visits, "failed_requests") == {}
    assert {name: v.problems["load"] for name, v in visits.items() if "load" in v.problems} == {}


def test_nothing_is_fetched_from_another_host(visits):
    assert _report(visits, "foreign_requests") == {}


def test_every_diagram_is_drawn(visits):
    with_diagrams = [v for v in visits.values() if v.diagrams]
    assert with_diagrams, "the site should have diagrams (docs/setup.md draws one)"
    assert {v.page: v.problems["diagrams"] for v in with_diagrams
            if "diagrams" in v.problems} == {}


def test_mermaid_is_fetched_only_by_pages_with_a_diagram(visits):
    fetched = {name: any(url.endswith("/" + MERMAID_SCRIPT) for url in v.requested)
               for name, v in visits.items()}
    wanted = {name: bool(v.diagrams) for name, v in visits.items()}
    assert fetched == wanted


def test_lesson_outputs_are_visible(visits):
    lesson_visits = [visits[lesson_page(lesson)] for lesson in lessons.find_lessons()]
    if not lesson_visits:
        pytest.skip("no lesson notebooks yet")
    assert {v.page: v.problems["outputs"] for v in lesson_visits if "outputs" in v.problems} == {}


def test_solutions_are_hidden_until_clicked(visits):
    lesson_visits = [visits[lesson_page(lesson)] for lesson in lessons.find_lessons()]
    if not any(v.solutions for v in lesson_visits):
        pytest.skip("no lesson has a cell tagged 'solution' yet")
    assert {v.page: v.problems["solutions"] for v in lesson_visits
            if "solutions" in v.problems} == {}


def test_lesson_pages_offer_the_notebook_for_download(visits):
    lesson_visits = [visits[lesson_page(lesson)] for lesson in lessons.find_lessons()]
    if not lesson_visits:
        pytest.skip("no lesson notebooks yet")
    assert {v.page: v.problems["download"] for v in lesson_visits
            if "download" in v.problems} == {}
    assert {v.page: v.download_status for v in lesson_visits} == {
        v.page: 200 for v in lesson_visits}


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
