"""The course website as published: it builds without a warning, and every page works.

The site is built once per test session and file (``mkdocs build --strict``
into a temporary folder; the ``site`` fixture, tests/conftest.py) as a
project's GitHub Pages site is: for, and served at, a sub-path
(``http://127.0.0.1:PORT/some-course/``), with a repository address set
(SOCKSERV_REPO_URL).  This file checks the built files and every page but the
lessons; tests/test_site_lessons.py looks at the lesson pages (on another
worker, with a build of its own); tests/test_site_offline.py checks the
file:// copy; tests/site_support.py holds what they share.

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
* on lesson pages (tests/test_site_lessons.py): every cell output visible,
  worked solutions hidden until "Show solution" is clicked, and a download
  link that serves the notebook;
* instant navigation (no full page load) still draws diagrams.

Without Chromium at /usr/bin/chromium the browser tests are skipped, saying so;
with SOCKSERV_REQUIRE_BROWSER=1 (as .ci/run sets it) they fail instead.
SOCKSERV_SITE_SCREENSHOTS=DIR saves a screenshot of every page visited, in
every variant, into DIR, to look at.
"""

import json
import re
import zipfile
from urllib.parse import urljoin

import pytest

from site_support import (COURSE_ZIP, MERMAID_SCRIPT, NAVIGATION_TIMEOUT_MS, REPO_URL, ROOT,
                          PageChecks, Recorder, Visit, build_warnings, check_diagrams,
                          count_diagrams, course_zip, pages_without_course_download,
                          remote_resources, visit_pages, watch)

# Limits that stop a hang; they do not measure speed (see site_support).
pytestmark = pytest.mark.timeout(600)


def test_site_builds_without_warnings(built):
    assert built.returncode == 0, built.output
    assert build_warnings(built) == []
    print(f"mkdocs build --strict took {built.seconds:.1f} s")


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

def test_no_page_links_a_resource_from_another_host(site):
    assert remote_resources(site) == {}


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


def test_notebook_cells_are_found_by_their_div_tags_alone():
    """The scan that finds cells to fold: div nesting only, nothing hidden in a script or comment."""
    import mkdocs_hooks  # tools/mkdocs_hooks.py
    first = '<div class="jp-Cell"><div><p>one<li>open</div></div>'
    second = ('<div class=\'jp-Cell celltag_solution\'><script>s = "<div>";</script>'
              '<!-- </div> --><div class="jp-OutputArea"></div></div>')
    third = ('<div class="jp-Cell"><div class="jp-MarkdownOutput celltag_solution">'
             '<style>.x::after { content: "</div>" }</style></div></div>')
    html = (f'<div class="jupyter-wrapper"><div class="jp-Notebook">{first}\n{second}{third}'
            '</div></div><div class="jp-Cell">after the notebook</div>')
    cells = mkdocs_hooks._notebook_cells(html)
    assert [html[start:end] for start, end, _ in cells] == [first, second, third]
    assert [solution for _, _, solution in cells] == [False, True, True]


def test_headings_give_their_own_text_without_the_permalink():
    import mkdocs_hooks  # tools/mkdocs_hooks.py
    html = ('<p>before</p><h2 id="the-loop">The <code>serve</code>\nloop<a class="anchor-link" '
            'href="#the-loop">¶</a></h2><span class="k">x</span><h3>no id</h3>'
            '<H4 id="x-&amp;-y">X &amp; Y</H4>')
    assert mkdocs_hooks._Headings(html).headings == [(2, "the-loop", "The serve loop"),
                                                     (4, "x-&-y", "X & Y")]


def test_lesson_pages_share_one_pruned_stylesheet_named_by_its_digest(site):
    """tools/notebook_css.py: one file for every lesson, holding no rule for an absent class."""
    import hashlib

    import notebook_css  # tools/notebook_css.py
    linked = {re.search(r'href="([^"]*notebook\.[0-9a-f]{12}\.css)"', site.read(site.lesson_page(l)))[1]
              .rsplit("/", 1)[1] for l in site.lessons}
    assert len(linked) == 1, linked
    name = linked.pop()
    css = (site.site_dir / "assets" / "stylesheets" / name).read_text(encoding="utf-8")
    assert name == f"notebook.{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
    classes = set().union(*(notebook_css.classes_in(site.read(site.lesson_page(l)))
                            for l in site.lessons))
    assert notebook_css.prune(css, classes) + "\n" == css  # nothing left to prune
    assert ".jp-OutputArea" in css and ".jp-Toolbar" not in css


def test_solution_cells_are_inside_closed_details(site):
    """Statically, without a browser: every cell tagged solution is folded away."""
    for lesson in site.lessons:
        assert watch(site, site.lesson_page(lesson)).solutions_outside_details == 0, \
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


def test_home_and_lesson_pages_link_to_the_course_download(site):
    assert pages_without_course_download(site) == []
    assert (site.site_dir / COURSE_ZIP).is_file()


def test_repository_set_shows_its_link_and_the_clone_command(site):
    home = site.read("index.html")
    assert re.search(r'<a href="%s"[^>]*class="md-source"' % re.escape(REPO_URL), home)
    assert f"git clone {REPO_URL}\n" in re.sub(r"<[^>]+>", "", home)  # the code block's text
    for lesson in site.lessons:
        assert f'href="{REPO_URL}"' in site.read(site.lesson_page(lesson))


# -- the browser: every page but the lessons (tests/test_site_lessons.py) ----

@pytest.fixture(scope="session")
def visits(site, site_url, browser_context):
    """Open every page but the lessons once, look at it in every variant: {page: Visit}."""
    lesson_pages = {site.lesson_page(lesson) for lesson in site.lessons}
    return visit_pages(browser_context, site,
                       [name for name in site.html_pages() if name not in lesson_pages],
                       site_url, lesson_checks=False)


class TestPages(PageChecks):
    """Every check of site_support.PageChecks, on these pages."""

    #: Diagrams (docs/setup.md draws one) and their arrowheads; code cells are the lessons'.
    SEEN = ("diagrams", "arrowheads")


def test_course_download_is_served(site_url, browser_context):
    response = browser_context.request.get(urljoin(site_url, COURSE_ZIP))
    try:
        assert response.status == 200
        assert response.body()[:4] == b"PK\x03\x04"
    finally:
        response.dispose()


def test_instant_navigation_draws_diagrams_offline(site, site_url, browser_context):
    """Click from page to page as a reader does: Material swaps content without a reload.

    From the home page to every page with a diagram (lessons included), through
    the navigation; each diagram drawn, no page loaded in full, Mermaid fetched once.
    """
    route = ["index.html"] + [name for name in site.html_pages()
                              if count_diagrams(site, name) and name not in ("index.html", "404.html")]
    page = browser_context.new_page()
    visit = Visit(" -> ".join(route))
    try:
        recorder = Recorder(page, visit, site_url)
        page.goto(urljoin(site_url, route[0]), wait_until="load")
        page.evaluate("window.__sockservNoReload = true")
        for name in route[1:]:
            # Nothing in flight (the last page's own requests, a prefetch) before the click.
            recorder.wait_until_quiet(page)
            target = urljoin(site_url, name).removesuffix("index.html")
            hrefs = page.eval_on_selector_all(".md-nav--primary a.md-nav__link[href]",
                                              "links => links.map(a => a.href)")
            assert target in hrefs, f"no link to {target} in the navigation"
            page.locator(".md-nav--primary a.md-nav__link[href]").nth(hrefs.index(target)).click()
            page.wait_for_url(target, timeout=NAVIGATION_TIMEOUT_MS)
            visit.diagrams = count_diagrams(site, name)
            check_diagrams(page, visit)
            assert page.evaluate("window.__sockservNoReload === true"), "a full page load happened"
            assert visit.problems == {}, name
        recorder.wait_until_quiet(page)
    finally:
        page.close()
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.failed_requests == [] and visit.foreign_requests == []
    assert visit.problems == {}
    assert sum(url.endswith("/" + MERMAID_SCRIPT) for url in visit.requested) == 1
