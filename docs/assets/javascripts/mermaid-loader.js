/*
 * Load the vendored Mermaid (mermaid.min.js, ~3.5 MB) only when a page has
 * a diagram to draw, and never from a CDN.
 *
 * Material for MkDocs draws every `pre.mermaid` itself, using a global
 * `mermaid` object if one exists and fetching Mermaid from unpkg.com if not.
 * This script defines that global as a stand-in: Material configures it with
 * initialize() and draws with render(); the first render() loads the real
 * Mermaid from next to this file, hands it the configuration, and from then
 * on the real Mermaid is the global.  Pages without a diagram never call
 * render(), so they never download Mermaid; with instant navigation it is
 * downloaded at most once per visit.
 *
 * It must run before Material draws, i.e. before DOMContentLoaded: it is
 * listed in extra_javascript, which MkDocs loads synchronously.
 *
 * Two corrections on the way through, both checked by tests/test_site.py:
 *
 * - Arrowheads.  Material's stylesheet for diagrams colours the sequence
 *   diagram's arrowheads through `#arrowhead`, the id Mermaid used before
 *   version 10; Mermaid 11 names them `<diagram id>-arrowhead` and paints
 *   them #333, which is all but invisible on the dark scheme (so are the
 *   outlines of class diagrams' relation heads).  ARROW_CSS
 *   (added to Material's themeCSS) gives every arrowhead the colour of its
 *   line, in both schemes.
 * - Size.  Mermaid draws a diagram 100% wide with its natural width as the
 *   maximum, so a wide diagram shrinks without limit (labels of 5 px at
 *   1280 px).  render() adds a minimum width, MIN_SCALE of the natural
 *   width, to the <svg>: below that the diagram keeps its size and scrolls
 *   sideways in its box (extra.css: div.mermaid { overflow-x: auto }).
 *
 * mermaid.min.js is Mermaid 11.17.2, unchanged: package/dist/mermaid.min.js
 * from `npm pack mermaid@11` (sha256 581ed7d74bd9048d0e3a91363927d72e
 * f22942d7722546b27f7cc29e35390eb8).  MIT licence: mermaid.LICENSE.txt.
 * To update: npm pack mermaid@11, copy that file and the package's LICENSE,
 * and run the site tests (tests/test_site.py draws every diagram).
 */
(function () {
  "use strict";
  // An element with id="mermaid" (a heading "Mermaid", say) also shows up
  // as window.mermaid; only a real Mermaid means there is nothing to do.
  if (typeof window.mermaid !== "undefined" && !(window.mermaid instanceof Element)) {
    return;
  }
  var scriptUrl = new URL("mermaid.min.js", document.currentScript.src).href;
  var configuration = {};
  var loading = null;

  // Mermaid prefixes each rule with the diagram's own id, so these reach only
  // the inside of the diagram being drawn.
  var LINE_COLOUR = "var(--md-mermaid-sequence-message-line-color)";
  var ARROW_CSS =
    '[id$="-arrowhead"] path, [id$="-crosshead"] path' +
    "{fill:" + LINE_COLOUR + " !important; stroke:" + LINE_COLOUR + " !important}" +
    '[id$="-stickTopArrowHead"] path, [id$="-stickBottomArrowHead"] path' +
    "{stroke:" + LINE_COLOUR + " !important}" +
    // Class diagrams: the outline of the hollow inheritance triangle (and of
    // the other relation heads) was #333 as well.
    'marker[id*="classDiagram-"] path{stroke:var(--md-mermaid-edge-color) !important}';

  // Mermaid's labels are 16 px at natural size: 0.75 keeps them at 12 px or more.
  var MIN_SCALE = 0.75;
  var SVG_MAX_WIDTH = /(<svg\b[^>]*?\bstyle="[^"]*?max-width:\s*)([\d.]+)px;?/;

  function withMinimumWidth(svg) {
    return svg.replace(SVG_MAX_WIDTH, function (all, start, width) {
      var minimum = Math.round(parseFloat(width) * MIN_SCALE);
      return start + width + "px; min-width: " + minimum + "px;";
    });
  }

  function loadMermaid() {
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = scriptUrl;
        script.onload = function () {
          // mermaid.min.js has replaced the stand-in with the real thing.
          window.mermaid.initialize(configuration);
          resolve(window.mermaid);
        };
        script.onerror = function () {
          reject(new Error("could not load " + scriptUrl));
        };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  window.mermaid = {
    initialize: function (options) {
      configuration = Object.assign({}, configuration, options);
      var css = configuration.themeCSS || "";
      configuration.themeCSS = css.indexOf(ARROW_CSS) < 0 ? css + ARROW_CSS : css;
    },
    render: function (id, text, container) {
      return loadMermaid().then(function (mermaid) {
        return mermaid.render(id, text, container);
      }).then(function (result) {
        result.svg = withMinimumWidth(result.svg);
        return result;
      });
    }
  };
})();
