// MathJax 3, served from this site (assets/mathjax, copied from the docs extra at build time): no CDN at view time.
// pymdownx.arithmatex (generic mode) wraps every formula in an element of class "arithmatex" with \( \) or \[ \];
// MathJax typesets those and nothing else, so a "$" in prose or code is never taken for math. A page without
// formulas (the source files' pages) does not load MathJax at all.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    // an unknown macro is an error the browser test can see (by default MathJax prints its name in red)
    packages: { "[-]": ["noundefined"] },
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  startup: {
    // the browser test (tests/test_site.py) waits for this flag before it looks for errors
    pageReady: () => MathJax.startup.defaultPageReady().then(() => { document.body.dataset.mathTypeset = "done"; }),
  },
};

if (document.querySelector(".arithmatex")) {
  const script = document.createElement("script");
  script.src = new URL("../assets/mathjax/tex-svg.js", document.currentScript.src).href;
  script.async = true;
  document.head.appendChild(script);
} else {
  document.body.dataset.mathTypeset = "done";
}
