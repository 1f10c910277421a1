"""tools/notebook_css.py: the notebook pages' stylesheet keeps every rule that can apply to them."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import notebook_css  # noqa: E402  (tools/notebook_css.py)

USED = {"jp-Cell", "jp-OutputArea", "jupyter-wrapper"}


def kept(css, classes=USED):
    return notebook_css.prune(css, classes)


def test_a_rule_needing_an_unused_jupyterlab_class_goes_and_the_rest_stays():
    css = (".jp-Cell .jp-OutputArea{ margin: 0 }\n"
           ".jp-Toolbar .jp-Cell{ display: flex }\n"  # no toolbar on any page
           ".bp3-button, .lm-Menu{ color: red }\n"
           ".CodeMirror-cursor{ border: 0 }\n"
           '.jp-Toolbar [data-command="a(b"]{ color: red }\n'
           "pre, .highlight .k{ color: blue }\n")
    assert kept(css) == ".jp-Cell .jp-OutputArea{ margin: 0 }\npre, .highlight .k{ color: blue }"


def test_classes_of_other_families_are_kept_even_when_no_page_has_them():
    # Material's scripts wrap tables in div.md-typeset__scrollwrap after the page loads.
    css = ".jupyter-wrapper .md-typeset__scrollwrap{ overflow: auto }"
    assert kept(css) == css


def test_a_list_with_one_selector_that_can_match_is_kept_whole():
    css = ".jp-Toolbar, .jp-Cell::-moz-selection{ color: red }"
    assert kept(css) == css


def test_what_is_inside_parentheses_or_brackets_is_not_required():
    css = (".jp-Cell:not(.jp-mod-active){ opacity: 1 }\n"
           ".jp-Cell:is(.jp-Toolbar, .jp-OutputArea){ margin: 1px }\n"
           '[title=".jp-Toolbar"]{ margin: 2px }\n'
           ".jp-Cell.jp-mod-\\:x{ margin: 3px }")  # an escape: kept as it is
    assert kept(css) == css


def test_at_rules_are_kept_and_grouping_rules_are_pruned_inside():
    css = ('@charset "UTF-8";\n'
           "@font-face { font-family: X; src: url(x.woff) }\n"
           "@keyframes jp-spin { to { transform: rotate(1turn) } }\n"
           "@media (max-width: 600px) { .jp-Cell { padding: 0 } .jp-Toolbar { padding: 1px } }\n"
           "@supports (display: grid) { .lm-Widget { display: grid } }\n")
    assert kept(css) == ('@charset "UTF-8";\n'
                         "@font-face{ font-family: X; src: url(x.woff) }\n"
                         "@keyframes jp-spin{ to { transform: rotate(1turn) } }\n"
                         "@media (max-width: 600px){.jp-Cell{ padding: 0 }}")


def test_comments_go_and_braces_in_strings_do_not_end_a_rule():
    css = ('/* .jp-Cell { } */ .jp-Cell::after { content: "} .jp-Toolbar {" }\n'
           ".jp-Toolbar { content: '/* not a comment' }")
    assert kept(css) == '.jp-Cell::after{ content: "} .jp-Toolbar {" }'


def test_custom_properties_stay():
    css = ":root { --jp-ui-font-size1: 13px }\n.jupyter-wrapper { --jp-cell-padding: 5px }"
    assert kept(css, set()) == css.replace(" {", "{")


def test_classes_in_reads_every_class_attribute():
    html = ('<div class="jp-Cell  jp-CodeCell"><span class=\'k\'>x</span>'
            '<p>class="not-an-attribute"</p><a CLASS="anchor-link"></a><b class=bare></b></div>')
    assert notebook_css.classes_in(html) == {"jp-Cell", "jp-CodeCell", "k", "anchor-link",
                                             "not-an-attribute", "bare"}
