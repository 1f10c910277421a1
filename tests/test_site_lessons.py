"""The lesson pages of the published website, in a real browser.

Each lesson page is opened once and looked at in every variant (1280 px and a
phone's 390 px, light and dark), with every check of site_support.PageChecks
(errors, requests, diagrams, layout), and the lessons' own: every cell output
visible, worked solutions hidden until "Show solution" is clicked, and a
download link that serves the notebook.  The site is built for this file on
its own worker (the ``site`` fixture, tests/conftest.py), so that these visits
run beside those of tests/test_site.py.
"""

import pytest

from site_support import PageChecks, visit_pages

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def visits(site, site_url, browser_context):
    """Open every lesson page once, look at it in every variant: {page: Visit}."""
    if not site.lessons:
        pytest.skip("no lesson notebooks yet")
    return visit_pages(browser_context, site, [site.lesson_page(lesson) for lesson in site.lessons],
                       site_url, lesson_checks=True)


class TestLessonPages(PageChecks):
    """Every check of site_support.PageChecks, on the lesson pages."""

    #: Code cells, lines too long for a phone (so scrolling is what kept them readable),
    #: outputs, drawn diagrams and the arrowheads their lines use.
    SEEN = ("code", "wideCode", "outputs", "diagrams", "arrowheads")

    def test_a_phone_shows_prompts_to_judge(self, visits):
        assert sum(v.seen["phone-light"]["prompts"] for v in visits.values()) > 0


def test_lesson_outputs_are_visible(visits):
    assert {v.page: v.problems["outputs"] for v in visits.values() if "outputs" in v.problems} == {}


def test_solutions_are_hidden_until_clicked(visits):
    assert any(v.solutions for v in visits.values()), "no lesson has a cell tagged 'solution'"
    assert {v.page: v.problems["solutions"] for v in visits.values()
            if "solutions" in v.problems} == {}


def test_lesson_pages_offer_the_notebook_for_download(visits):
    assert {v.page: v.problems["download"] for v in visits.values()
            if "download" in v.problems} == {}
    assert {v.page: v.download_status for v in visits.values()} == {
        page: 200 for page in visits}
