"""The offline copy of the website (what ``make offline`` builds): it opens from file:// and works.

Built once per test session with SOCKSERV_OFFLINE=true and no repository
address, into a temporary folder, then opened from ``file://`` in Debian's
Chromium: every page loads everything from the copy itself, with no console or
page error; the navigation reaches every lesson and draws its diagrams; search
finds results (its worker runs through the vendored iframe-worker shim).
tests/site_support.py holds what this shares with tests/test_site.py.
"""

import contextlib
import json
import re
from urllib.parse import urlsplit

import pytest

from site_support import (COURSE_ZIP, NAVIGATION_TIMEOUT_MS, REPO_URL, ROOT, Recorder, Visit,
                          build_warnings,
                          check_diagrams, count_diagrams, mkdocs_build, new_context,
                          pages_without_course_download, problems, remote_resources, report,
                          watch)

pytestmark = pytest.mark.timeout(600)


# -- the build ----------------------------------------------------------------

@pytest.fixture(scope="session")
def offline_built(tmp_path_factory):
    """The file:// copy (what `make offline` builds), no repository set; once per session."""
    site_dir = tmp_path_factory.mktemp("site-offline") / "site-offline"
    return mkdocs_build(site_dir, SOCKSERV_OFFLINE="true", SOCKSERV_REPO_URL=None,
                         SOCKSERV_SITE_URL=None)


@pytest.fixture(scope="session")
def offline_site(offline_built):
    if offline_built.returncode != 0:
        pytest.fail(f"the offline build failed:\n{offline_built.output}", pytrace=False)
    return offline_built


def test_offline_copy_builds_without_warnings(offline_built):
    assert offline_built.returncode == 0, offline_built.output
    assert build_warnings(offline_built) == []
    print(f"offline build took {offline_built.seconds:.1f} s")


def test_no_page_links_a_resource_from_another_host(offline_site):
    assert remote_resources(offline_site) == {}


def test_home_and_lesson_pages_link_to_the_course_download(offline_site):
    assert pages_without_course_download(offline_site) == []
    assert (offline_site.site_dir / COURSE_ZIP).is_file()


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
        assert any(url.endswith("iframe-worker/shim.js") for url in watch(offline_site, page).loads)


# -- the copy, from file:// ---------------------------------------------------

@pytest.fixture(scope="session")
def offline_url(offline_site):
    return offline_site.site_dir.as_uri() + "/"


@pytest.fixture(scope="session")
def offline_visits(offline_site, offline_url, browser):
    """Every page of the copy, reached as a reader does, at desktop size (light): {page: Visit}.

    The home page is opened; every other page is reached by a click on its link
    in the navigation of the page before (a page the navigation does not list
    is opened directly: its Visit says reached_by_click=False).  Each click is
    a full page load here: the offline copy has no instant navigation.

    Except 404.html: a server shows it for a missing page, at any depth, so its
    links start at the site's root ("/some-course/..."); from file:// nothing
    ever shows it.
    """
    context = new_context(browser)
    page = context.new_page()
    visits = {}
    try:
        home = visits["index.html"] = Visit("index.html",
                                            diagrams=count_diagrams(offline_site, "index.html"))
        recorder = Recorder(page, home, offline_url)
        page.goto(offline_url + "index.html", wait_until="load")
        for name in ["index.html"] + [name for name in offline_site.html_pages()
                                      if name not in ("index.html", "404.html")]:
            visit = visits.get(name)
            if visit is None:
                # The page before is done: none of its requests (a late one, the search
                # index's, on a busy machine) is still in flight to be cut off by the click.
                recorder.wait_until_quiet(page)
                visit = visits[name] = Visit(name, diagrams=count_diagrams(offline_site, name))
                recorder.visit = visit
                target = offline_url + name
                hrefs = page.eval_on_selector_all(".md-nav--primary a.md-nav__link[href]",
                                                  "links => links.map(a => a.href)")
                if target in hrefs:
                    page.locator(".md-nav--primary a.md-nav__link[href]").nth(
                        hrefs.index(target)).click()
                    page.wait_for_url(target, timeout=NAVIGATION_TIMEOUT_MS)
                    visit.reached_by_click = True
                else:
                    page.goto(target, wait_until="load")
            if visit.diagrams:
                check_diagrams(page, visit)
        recorder.wait_until_quiet(page)
    finally:
        page.close()
        context.close()
    return visits


def test_offline_pages_load_everything_from_the_copy(offline_visits):
    visits = offline_visits
    assert report(visits, "console_errors") == {}
    assert report(visits, "page_errors") == {}
    assert report(visits, "failed_requests") == {}
    assert report(visits, "foreign_requests") == {}
    assert problems(visits, "diagrams") == {}
    assert any(v.diagrams for v in offline_visits.values())


def test_offline_navigation_reaches_every_lesson_and_draws_its_diagrams(offline_site,
                                                                        offline_visits):
    lessons = [offline_visits[offline_site.lesson_page(lesson)] for lesson in offline_site.lessons]
    assert lessons, "no lesson pages in the offline copy"
    assert [v.page for v in lessons if not v.reached_by_click] == []
    assert {v.page: v.problems for v in lessons if v.problems} == {}
    assert any(v.diagrams for v in lessons)


@contextlib.contextmanager
def _offline_home(browser, offline_url, visit):
    """A fresh page on the file:// copy's home page, recording into visit."""
    context = new_context(browser)
    page = context.new_page()
    try:
        Recorder(page, visit, offline_url)
        page.goto(offline_url + "index.html", wait_until="load")
        yield page
    finally:
        page.close()
        context.close()
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.failed_requests == [] and visit.foreign_requests == []


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
