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
    },
    render: function (id, text, container) {
      return loadMermaid().then(function (mermaid) {
        return mermaid.render(id, text, container);
      });
    }
  };
})();
