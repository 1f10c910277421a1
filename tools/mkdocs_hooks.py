"""MkDocs hooks that turn notebooks/*.ipynb into the site's lessons.

The notebooks stay where learners and nbval use them, in ``notebooks/``; no
symlink into ``docs/`` (symlinks break Windows checkouts).  Instead these
hooks, loaded through ``hooks:`` in mkdocs.yml, do four jobs:

1. on_config: fill the empty "Lessons" section of the nav from
   ``tools/lessons.py``, the one source of the lesson list (the README's
   index comes from the same place); on_page_markdown: the same list on
   the home page, where it says ``<!-- lesson-list ... -->``.
2. on_files: add each lesson notebook to the site's files, at the same path
   as in the repository (``notebooks/NN-slug.ipynb``, so the page is
   ``notebooks/NN-slug/``), for mkdocs-jupyter to render.  This must run
   before mkdocs-jupyter's own on_files, hence the raised event priority.
3. on_page_content, for notebook pages only, tidy what nbconvert emits:

   * drop the MathJax and Mermaid loader scripts, which fetch code from a
     CDN (the site must load nothing from another host; Material renders the
     ``pre.mermaid`` blocks with the vendored Mermaid, see
     ``docs/assets/javascripts/mermaid-loader.js``);
   * move the ~600 KB of JupyterLab CSS that nbconvert inlines into every
     notebook page into one shared, cacheable stylesheet, which keeps only
     the rules that can apply to the lessons (tools/notebook_css.py: about
     150 KB), named by a digest of what it holds;
   * wrap each run of cells tagged ``solution`` in a closed ``<details>``,
     so worked solutions stay hidden until the reader asks.  Doing it at
     build time needs no JavaScript and survives instant navigation;
   * rebuild the page's table of contents from the headings nbconvert
     rendered: mkdocs-jupyter derives it from Markdown, which drops the code
     spans of a heading like "`shutdown()` versus `server_close()`" and so
     gives it a wrong title and a link to an id that does not exist.

   And give every heading of a notebook page its own id: nbconvert derives
   ids from the text, so two "Solution" headings shared one and every
   "Solution" link went to the first.

4. on_post_page: warn (which fails ``mkdocs build --strict``) if a page
   still loads a script, stylesheet, image or module from another host.

5. The course as a download and its repository (see tools/course_zip.py):
   on_files adds ``download/sockserv-course.zip``, made from the
   repository's files at build time; on_page_markdown fills the home page's
   ``<!-- course-download -->`` marker with the download link and, when
   mkdocs.yml's repo_url is set (SOCKSERV_REPO_URL), the clone command.

6. The offline copy (SOCKSERV_OFFLINE=true, Material's offline plugin): on_config
   turns instant navigation off (it needs a server) and points the pages at
   the vendored iframe-worker shim, which lets search run from file://,
   instead of unpkg.com.

7. The exercises page and links into lessons (see tools/site_pages.py):
   on_page_markdown fills ``<!-- exercise-list -->`` (docs/exercises.md)
   with every lesson's ``### Exercise N: title`` headings, each linked to
   its heading; on_post_build warns about any link from a page into a
   lesson whose #anchor is not a heading there (the glossary's, say).
"""

import hashlib
import html
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.structure.toc import get_toc
from mkdocs.utils import get_relative_url

import course_zip  # tools/course_zip.py (MkDocs puts a hook's folder on sys.path)
import lessons  # tools/lessons.py
import notebook_css  # tools/notebook_css.py
import site_pages  # tools/site_pages.py

log = logging.getLogger("mkdocs.hooks.sockserv")

LESSONS_SECTION = "Lessons"
LESSON_LIST_MARKER = re.compile(r"^<!-- lesson-list\b.*?-->$", re.M)
NOTEBOOK_CSS_DIR = "assets/stylesheets"
SOLUTION_TAG_CLASS = "celltag_solution"  # nbconvert's class for the cell tag "solution"
COURSE_DOWNLOAD_MARKER = re.compile(r"^<!-- course-download\b.*?-->$", re.M)
COURSE_ZIP_URI = f"download/{course_zip.ARCHIVE_NAME}"
EXERCISE_LIST_MARKER = re.compile(r"^<!-- exercise-list\b.*?-->$", re.M)
OFFLINE_PLUGIN = "material/offline"
# The vendored copy of iframe-worker's shim (npm iframe-worker 1.0.4,
# shim/index.js, MIT: LICENSE.txt beside it): with it, Material's search
# worker runs from file://, where browsers refuse real Web Workers.
IFRAME_WORKER_SHIM = "assets/javascripts/iframe-worker/shim.js"

# Blocks of nbconvert's lab template that fetch code from a CDN.  Both are
# bracketed by HTML comments in the template, which makes them easy to cut.
_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID_BLOCK = re.compile(
    r'<script type="module">(?:(?!</script>).)*?mermaid.*?<!-- End of mermaid configuration -->',
    re.S)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)

# What counts as loading something from elsewhere: a script, stylesheet,
# image or frame with an absolute or protocol-relative URL, or a JavaScript
# or CSS import of one.  (Links to other sites are fine: they load nothing.)
_EXTERNAL_LOAD = re.compile(
    r"""<(?:script|img|iframe|audio|video|source|embed)\b[^>]*\bsrc=["']?(?:https?:)?//"""
    r"""|<link\b(?=[^>]*\brel=["']?stylesheet)[^>]*\bhref=["']?(?:https?:)?//"""
    r"""|\bimport\(\s*["'](?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//""",
    re.I)

# Shared notebook stylesheets of this build: site URI -> CSS text (as nbconvert gave it),
# the files of the pages that link to each, and every class the notebook pages use.
_notebook_css = {}
_notebook_css_pages = {}
_notebook_classes = set()


# -- 1. the nav -------------------------------------------------------------

def _lessons_for(config):
    """The lessons next to this mkdocs.yml (in its notebooks/ folder)."""
    project = Path(config.config_file_path).resolve().parent
    return lessons.find_lessons(project / "notebooks")


def is_offline_build(config):
    """Is this the file:// copy (Material's offline plugin enabled)?"""
    plugin = config.plugins.get(OFFLINE_PLUGIN)
    return bool(plugin and plugin.config.enabled)


def _configure_offline(config):
    """Instant navigation off; the local iframe-worker shim instead of unpkg.com's.

    Order does not matter: the offline plugin adds unpkg.com's shim only when
    no polyfill mentions iframe-worker, and any it added is replaced here.
    """
    features = config.theme["features"]
    features[:] = [f for f in features if not f.startswith("navigation.instant")]
    polyfills = [url for url in config.extra.get("polyfills", []) if "iframe-worker" not in url]
    config.extra["polyfills"] = polyfills + [IFRAME_WORKER_SHIM]


def on_config(config):
    """Fill the nav's empty "Lessons" section; set up the offline copy if asked."""
    _notebook_css.clear()
    _notebook_css_pages.clear()
    _notebook_classes.clear()
    if is_offline_build(config):
        _configure_offline(config)
    for index, item in enumerate(config.nav or []):
        if isinstance(item, dict) and LESSONS_SECTION in item:
            found = _lessons_for(config)
            if not found:
                log.warning("no lesson notebooks in notebooks/: the Lessons section is empty")
            entries = [{lesson.title: lesson.site_uri} for lesson in found]
            config.nav[index] = {LESSONS_SECTION: entries}
            return config
    log.warning("mkdocs.yml: the nav has no '%s: []' section for the hooks to fill",
                LESSONS_SECTION)
    return config


def _course_download_markdown(page, config):
    """The home page's "get the course" text: the zip, and a clone command if there is a repo."""
    link = get_relative_url(COURSE_ZIP_URI, page.file.src_uri)
    text = (f"**[Download the course]({link})** ({course_zip.ARCHIVE_NAME}: the package, "
            "the notebooks, the tests and this website's sources), unzip it, and run the "
            "two commands below in its folder.")
    if config.repo_url:
        folder = config.repo_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        text += ("\n\nOr clone [the repository](%s):\n\n```bash\ngit clone %s\ncd %s\n```"
                 % (config.repo_url, config.repo_url, folder or "sockserv-course"))
    return text


def on_page_markdown(markdown, page, config, files):
    """Fill the home page's markers: the lesson list, and how to get the course."""
    markdown = COURSE_DOWNLOAD_MARKER.sub(
        lambda _: _course_download_markdown(page, config), markdown)
    if EXERCISE_LIST_MARKER.search(markdown):
        exercises = site_pages.render_exercise_list(
            _lessons_for(config),
            lambda lesson: get_relative_url(lesson.site_uri, page.file.src_uri))
        markdown = EXERCISE_LIST_MARKER.sub(lambda _: exercises, markdown)
    if not LESSON_LIST_MARKER.search(markdown):
        return markdown
    found = _lessons_for(config)
    # Links to the .ipynb files: MkDocs turns them into links to the pages,
    # relative to whichever page holds the list.
    items = "\n".join(
        f"{int(lesson.number)}. [{lesson.title}]"
        f"({get_relative_url(lesson.site_uri, page.file.src_uri)})"
        for lesson in found) or "*The lessons are on their way.*"
    return LESSON_LIST_MARKER.sub(lambda _: items, markdown)


# -- 2. the files -----------------------------------------------------------

@event_priority(100)  # before mkdocs-jupyter (priority 0) wraps notebook files
def on_files(files, config):
    """Add the lesson notebooks to the site's documentation files."""
    project = Path(config.config_file_path).resolve().parent
    for lesson in _lessons_for(config):
        # A plain File read from the project folder (rather than
        # File.generated): mkdocs-jupyter's wrapper of notebook files only
        # finds the source of files that have a src_dir.
        files.append(File(lesson.site_uri, src_dir=str(project), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    # mkdocstrings' template overrides live in the theme folder
    # (docs/overrides/mkdocstrings/), and MkDocs copies a theme's non-HTML
    # files into the site as assets: they are templates, not assets.
    for file in [f for f in files if f.src_uri.endswith(".jinja")]:
        files.remove(file)
    # The course itself, zipped from the repository's files (no network).
    files.append(File.generated(config, COURSE_ZIP_URI,
                                content=course_zip.course_zip_bytes(project)))
    return files


# -- 3. notebook pages ------------------------------------------------------

def _is_notebook_page(page):
    return page.file.src_uri.endswith(".ipynb")


#: What can hide a "<div" that is no tag: comments, scripts and stylesheets (an
#: output's own <script> may well build HTML in a string).
_NOT_MARKUP = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>", re.S | re.I)
_DIV_TAG = re.compile(r"<(/?)div\b[^>]*>", re.I)


def _notebook_cells(text):
    """The cells of nbconvert's HTML (the children of div.jp-Notebook): [(start, end, is_solution)].

    start and end are offsets in text, end just after the cell's </div>.  Only
    <div> tags are counted to track nesting: a div is always closed explicitly,
    whereas <p> or <li> in rendered outputs may not be.  Found by a scan of the
    div tags alone, outside comments, scripts and stylesheets (blanked first,
    so offsets keep): a full HTML parse of a lesson page spends most of its
    time on the thousands of code-colouring <span>s, which do not matter here.
    """
    scan = _NOT_MARKUP.sub(lambda match: " " * len(match.group(0)), text)
    depth = 0  # open <div>s
    notebook_depth = None  # depth inside div.jp-Notebook; -1 once it has closed
    cell = None  # [start, is_solution] of the cell being read
    cells = []
    for tag in _DIV_TAG.finditer(scan):
        if not tag.group(1):
            classes = notebook_css.classes_in(tag.group(0))
            depth += 1
            if notebook_depth is None:
                if "jp-Notebook" in classes:
                    notebook_depth = depth
            elif depth == notebook_depth + 1:
                # A code cell carries the tag's class itself.
                cell = [tag.start(), SOLUTION_TAG_CLASS in classes]
            elif cell is not None and "jp-MarkdownOutput" in classes:
                # A markdown cell carries it on its rendered-markdown div.
                cell[1] = cell[1] or SOLUTION_TAG_CLASS in classes
        elif depth:
            if cell is not None and depth == notebook_depth + 1:
                cells.append((cell[0], tag.end(), cell[1]))
                cell = None
            elif depth == notebook_depth:
                notebook_depth = -1  # done: ignore anything after the notebook
            depth -= 1
    return cells


def _wrap_solutions(content, page):
    """Wrap each run of adjacent solution cells in a closed <details>."""
    cells = _notebook_cells(content)
    runs = []  # [start, end] of each run of adjacent solution cells
    previous_end = None
    for start, end, is_solution in cells:
        if is_solution:
            if runs and content[previous_end:start].strip() == "" and runs[-1][1] == previous_end:
                runs[-1][1] = end
            else:
                runs.append([start, end])
        previous_end = end
    for start, end in reversed(runs):
        content = (content[:start]
                   + '<details class="sockserv-solution">'
                   + '<summary>Show solution</summary>\n'
                   + content[start:end]
                   + "\n</details>"
                   + content[end:])
    tagged = content.count(SOLUTION_TAG_CLASS)
    if tagged and not runs:
        log.warning("%s: cells tagged 'solution' were found but not wrapped; "
                    "has nbconvert's HTML changed?", page.file.src_uri)
    return content


def _share_notebook_css(content, page):
    """Replace the notebook's inlined <style> blocks by one shared stylesheet link."""
    head, marker, body = content.partition('<div class="jupyter-wrapper">')
    first = _STYLE.search(head)
    if not marker or not first:
        return content
    # The blocks before the notebook are nbconvert's and mkdocs-jupyter's
    # CSS, the same for every notebook page.
    css = "\n".join(block.strip() for block in _STYLE.findall(head))
    digest = hashlib.sha256(css.encode("utf-8")).hexdigest()[:12]
    uri = f"{NOTEBOOK_CSS_DIR}/notebook.{digest}.css"
    _notebook_css[uri] = css
    _notebook_css_pages.setdefault(uri, []).append(page.file.abs_dest_path)
    _notebook_classes.update(notebook_css.classes_in(body))
    link = '<link rel="stylesheet" href="%s">' % html.escape(get_relative_url(uri, page.url))
    head = head[:first.start()] + link + _STYLE.sub("", head[first.end():])
    # mkdocs-jupyter appends one more block after the notebook: the Python
    # repr of a list holding the Pygments CSS again, which is not CSS.
    body = re.sub(r"(</div> <!-- jupyter-wrapper -->)\s*<style>\s*\[.*?\]\s*</style>",
                  r"\1", body, flags=re.S)
    return head + marker + body


#: A heading element, whole (headings do not nest).
_HEADING = re.compile(r"<h([1-6])\b.*?</h\1\s*>", re.S | re.I)


class _Headings(HTMLParser):
    """The (level, id, text) of every <h1>..<h6 id=...> in rendered HTML.

    The text leaves out nbconvert's "¶" permalink (an <a class="anchor-link">).
    Only the headings are parsed, not the whole page around them (a lesson
    page: a tenth of the time).
    """

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.headings = []
        self._open = None  # [level, id, text parts] of the heading being read
        self._in_anchor_link = False
        self.feed("\n".join(match.group(0) for match in _HEADING.finditer(text)))
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if re.fullmatch(r"h[1-6]", tag) and attrs.get("id"):
            self._open = [int(tag[1]), attrs["id"], []]
        elif tag == "a" and self._open and "anchor-link" in (attrs.get("class") or ""):
            self._in_anchor_link = True

    def handle_endtag(self, tag):
        if tag == "a":
            self._in_anchor_link = False
        elif self._open and tag == f"h{self._open[0]}":
            level, anchor, parts = self._open
            self.headings.append((level, anchor, " ".join("".join(parts).split())))
            self._open = None

    def handle_data(self, data):
        if self._open and not self._in_anchor_link:
            self._open[2].append(data)


def _notebook_toc(html_content):
    """A table of contents whose titles and links are the rendered headings'."""
    root = {"level": 0, "children": []}
    stack = [root]
    for level, anchor, title in _Headings(html_content).headings:
        token = {"level": level, "id": anchor, "name": html.escape(title), "children": []}
        while stack[-1]["level"] >= level:
            stack.pop()
        stack[-1]["children"].append(token)
        stack.append(token)
    return get_toc(root["children"])


_HEADING_WITH_ID = re.compile(
    r'(<h[1-6]\b[^>]*?\bid=")([^"]+)("[^>]*>)(.*?)(</h[1-6]>)', re.S)
_ANY_ID = re.compile(r'\bid="([^"]+)"')


def unique_heading_ids(html_content):
    """html_content with each repeated heading id made unique ("x", "x-2", "x-3").

    nbconvert derives a heading's id from its text, so two headings with the
    same text share an id, and every link to the second one (contents,
    search, permalink) lands on the first.  The first keeps its id; each
    later one gets the first free "-N" suffix, in its own permalink too.
    """
    taken = set(_ANY_ID.findall(_HEADING_WITH_ID.sub("", html_content)))
    seen = set()

    def rename(match):
        start, anchor, rest, inner, end = match.groups()
        if anchor not in seen and anchor not in taken:
            seen.add(anchor)
            return match.group(0)
        number = 2
        while f"{anchor}-{number}" in seen or f"{anchor}-{number}" in taken:
            number += 1
        new = f"{anchor}-{number}"
        seen.add(new)
        log.info("heading id %r repeated: the later one is now %r", anchor, new)
        inner = inner.replace(f'href="#{anchor}"', f'href="#{new}"')
        return f"{start}{new}{rest}{inner}{end}"

    return _HEADING_WITH_ID.sub(rename, html_content)


def on_page_content(html_content, page, config, files):
    """Tidy a notebook page: no CDN loaders, shared CSS, hidden solutions, true contents."""
    if not _is_notebook_page(page):
        return html_content
    html_content = unique_heading_ids(html_content)
    page.toc = _notebook_toc(html_content)
    html_content = _MATHJAX_BLOCK.sub("", html_content)
    html_content = _MERMAID_BLOCK.sub("", html_content)
    html_content = _share_notebook_css(html_content, page)
    return _wrap_solutions(html_content, page)


# -- 4. every page ----------------------------------------------------------

def on_post_page(output, page, config):
    """Warn if the finished page still loads anything from another host."""
    match = _EXTERNAL_LOAD.search(output)
    if match:
        context = output[max(0, match.start() - 40):match.end() + 80].replace("\n", " ")
        log.warning("%s loads something from another host: ...%s...",
                    page.file.src_uri, context)
    return output


def _write_notebook_css(site_dir):
    """Write each shared notebook stylesheet, pruned, under a name that is its digest.

    Only now is every notebook page's set of classes known, and the pages are
    written already: each one's link is renamed to the pruned file's name,
    so that a browser never keeps an old copy of a changed stylesheet.
    """
    for uri, css in _notebook_css.items():
        pruned = notebook_css.prune(css, _notebook_classes) + "\n"
        digest = hashlib.sha256(pruned.encode("utf-8")).hexdigest()[:12]
        final = f"{NOTEBOOK_CSS_DIR}/notebook.{digest}.css"
        target = Path(site_dir) / final
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(pruned, encoding="utf-8")
        old_name, new_name = uri.rsplit("/", 1)[1], final.rsplit("/", 1)[1]
        for path in _notebook_css_pages.get(uri, []):
            page = Path(path)
            text = page.read_text(encoding="utf-8")
            if old_name not in text:
                log.warning("%s does not link %s any more; is the page changed after the "
                            "build?", path, old_name)
                continue
            page.write_text(text.replace(old_name, new_name), encoding="utf-8")


def on_post_build(config):
    """Write the shared notebook stylesheet(s); warn about links to missing lesson anchors."""
    _write_notebook_css(config.site_dir)
    for page, href in site_pages.broken_lesson_links(config.site_dir):
        log.warning("%s links to %s, which is not a heading of that lesson", page, href)
