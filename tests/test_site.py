"""The docs as a site, checked in a real browser: ``mkdocs build --strict`` builds docs/ with no warning, and headless
Chromium (Debian's ``chromium``, driven over the DevTools protocol by Playwright; no browser is downloaded) opens
every built page from a server on 127.0.0.1 and finds

- no formula that MathJax reports as an error, and none left as raw TeX (``$...$``, ``\\frac``) in the text;
- no broken internal link (to a page, or to an anchor on it) and no image that fails to load;
- no request that leaves 127.0.0.1 (a reader offline sees the same site) and no failed request or script error.

Full-page screenshots of lstm.md and gradients-through-time.md are kept in build/site-screenshots/ (git-ignored).
Without Chromium the browser checks skip and say so; the strict build runs anyway.
"""
import functools
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
SCREENSHOTS = ("lstm.html", "gradients-through-time.html")
SCREENSHOT_FOLDER = ROOT / "build" / "site-screenshots"   # git-ignored; kept after the run as its artifacts

# What a page holds once MathJax is done: its errors, formulas it left alone, TeX left in the prose, images that did
# not load, its links and its ids (the anchors links may point at).
INSPECT = r"""() => {
  const texInProse = /\$[^$\s][^$]*\$|\\\(|\\\[|\\(frac|text|partial|sum|alpha|odot|mathbf|left|right|big)\b/;
  const walker = document.createTreeWalker(document.querySelector("article") || document.body, NodeFilter.SHOW_TEXT);
  const rawTex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("pre, code, script, style, mjx-container, .arithmatex")) continue;
    if (texInProse.test(node.textContent)) rawTex.push(node.textContent.trim().slice(0, 80));
  }
  return {
    mathErrors: [...new Set([...document.querySelectorAll("[data-mjx-error], mjx-merror")].map(
      (node) => node.getAttribute("data-mjx-error") || node.textContent))],
    untypeset: [...document.querySelectorAll(".arithmatex")].filter((node) => !node.querySelector("mjx-container"))
      .map((node) => node.textContent.slice(0, 80)),
    formulas: document.querySelectorAll(".arithmatex mjx-container").length,
    rawTex,
    brokenImages: [...document.images].filter((img) => !img.complete || img.naturalWidth === 0)
      .map((img) => img.getAttribute("src")),
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
    ids: [...document.querySelectorAll("[id]")].map((node) => node.id),
  };
}"""


def build(docs_config, site, strict=True):
    """``mkdocs build`` of ``docs_config`` into ``site``; returns its log (strict: fails the test on a warning)."""
    command = [sys.executable, "-m", "mkdocs", "build", "--config-file", str(docs_config), "--site-dir", str(site)]
    done = subprocess.run(command + (["--strict"] if strict else []), capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=240, cwd=ROOT)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and (not strict or "WARNING" not in log), f"mkdocs build failed:\n{log}"
    return log


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def browse(site, screenshots=None):
    """Open every page of the built ``site`` in headless Chromium; returns {page: findings} and the problems."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html"))
    found, problems = {}, {"network": [], "failed requests": [], "script errors": []}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            current = {"page": None}

            def route(request_route):
                if request_route.request.url.startswith(base):
                    request_route.continue_()
                else:
                    problems["network"].append(f"{current['page']}: {request_route.request.url}")
                    request_route.abort()

            tab.route("**/*", route)
            tab.on("response", lambda response: response.status >= 400 and problems["failed requests"].append(
                f"{current['page']}: {response.status} {response.url}"))
            tab.on("pageerror", lambda error: problems["script errors"].append(f"{current['page']}: {error}"))
            for page in pages:
                current["page"] = page
                tab.goto(base + page, wait_until="load")
                tab.wait_for_function("document.body.dataset.mathTypeset === 'done'", timeout=30_000)
                found[page] = tab.evaluate(INSPECT)
                if screenshots and page in SCREENSHOTS:
                    tab.screenshot(path=str(screenshots / page.replace(".html", ".png")), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    for page, seen in found.items():
        for key in ("mathErrors", "untypeset", "rawTex", "brokenImages"):
            problems.setdefault(key, []).extend(f"{page}: {item}" for item in seen[key])
        for link in seen["links"]:
            target = urlsplit(link)
            if not link.startswith(base):
                continue
            path = unquote(target.path[1:]) or "index.html"
            path = path + "index.html" if path.endswith("/") else path
            if not (site / path).exists():
                problems.setdefault("brokenLinks", []).append(f"{page}: {link[len(base):]}")
            elif target.fragment and path in found and unquote(target.fragment) not in found[path]["ids"]:
                problems.setdefault("brokenLinks", []).append(f"{page}: {link[len(base):]} (no such anchor)")
    return found, {key: value for key, value in problems.items() if value}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    build(ROOT / "mkdocs.yml", folder / "site")
    return folder


@pytest.fixture(scope="module")
def browsed(site):
    if CHROMIUM is None:
        pytest.skip("SKIPPED: no Chromium on this machine (Debian: apt-get install chromium), so the built site was "
                    "not opened in a browser; the strict build ran")
    screenshots = SCREENSHOT_FOLDER
    screenshots.mkdir(parents=True, exist_ok=True)
    found, problems = browse(site / "site", screenshots)
    print(f"\nsite: {len(found)} pages opened in {CHROMIUM}; screenshots in {screenshots}")
    return found, problems, screenshots


def test_the_site_builds_strict_with_every_page_of_docs(site):
    built = {path.name for path in (site / "site").glob("*.html")}
    assert {page.with_suffix(".html").name for page in (ROOT / "docs").glob("*.md")} <= built


INCLUDED = re.compile(r'class="filename">([^<,]+), lines? (\d+)(?:-(\d+))?</span>.*?<td class="code">(.*?)</td>', re.S)


def test_the_code_a_page_quotes_is_included_from_the_file_with_its_line_numbers(site):
    """What the site shows under "deeprnn/FILE.py, lines A-B" is those lines of the file (dedented), so it cannot
    drift from the code; the page's own copy (read on a code host) is held to the file by tests/test_docs.py."""
    included = []
    for page in sorted((site / "site").glob("*.html")):
        for path, first, last, shown in INCLUDED.findall(page.read_text()):
            lines = (ROOT / path).read_text().split("\n")[int(first) - 1:int(last or first)]
            assert html.unescape(re.sub(r"<[^>]+>", "", shown)) == textwrap.dedent("\n".join(lines)) + "\n", (
                f"{page.name}: {path} {first}-{last}")
            included.append(page.name)
    quoting = {page.with_suffix(".html").name for page in (ROOT / "docs").glob("*.md")
               if "<!-- quote: " in page.read_text()}
    assert set(included) == quoting, "every page that quotes code shows it included from the source"


@pytest.mark.parametrize("kind", ["mathErrors", "untypeset", "rawTex"])
def test_every_formula_is_typeset_by_mathjax(browsed, kind):
    found, problems, _ = browsed
    assert sum(seen["formulas"] for seen in found.values()) > 200, "the pages' formulas were typeset"
    assert kind not in problems, f"{kind}:\n" + "\n".join(problems[kind])


@pytest.mark.parametrize("kind", ["brokenLinks", "brokenImages", "failed requests"])
def test_every_internal_link_and_image_resolves(browsed, kind):
    _, problems, _ = browsed
    assert kind not in problems, f"{kind}:\n" + "\n".join(problems[kind])


@pytest.mark.parametrize("kind", ["network", "script errors"])
def test_a_page_needs_no_network_and_runs_without_script_errors(browsed, kind):
    _, problems, _ = browsed
    assert kind not in problems, f"{kind}:\n" + "\n".join(problems[kind])


def test_the_screenshots_are_kept(browsed):
    _, _, screenshots = browsed
    for name in SCREENSHOTS:
        assert (screenshots / name.replace(".html", ".png")).stat().st_size > 10_000, name


BROKEN_PAGE = r"""# Broken on purpose

An unknown macro: $\foo{x}$. A formula left as text: \$\frac{1}{2}\$.

A [missing page](missing.md), a [missing anchor](#nowhere), a ![missing image](images/none.png) and an image from
the network: <img src="http://example.invalid/x.png" alt="remote">.
"""


def test_the_browser_checks_catch_what_breaks_a_page(tmp_path):
    """The checks can fail: one page with each fault, built (not strict) with the site's own hooks and MathJax."""
    if CHROMIUM is None:
        pytest.skip("SKIPPED: no Chromium on this machine (Debian: apt-get install chromium)")
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs" / "_site", docs / "_site")
    (docs / "index.md").write_text(BROKEN_PAGE)
    config = (ROOT / "mkdocs.yml").read_text().split("\nnav:")[0].replace(
        "  - docs/_site/hooks.py", f"  - {ROOT / 'docs' / '_site' / 'hooks.py'}").replace("site_dir: site", "")
    (tmp_path / "mkdocs.yml").write_text(config + "\nnav:\n  - index.md\n")
    build(tmp_path / "mkdocs.yml", tmp_path / "site", strict=False)
    _, problems = browse(tmp_path / "site")
    assert [item for item in problems["mathErrors"] if item.startswith("index.html")] == [
        "index.html: Undefined control sequence \\foo"]
    assert problems["rawTex"] == ["index.html: . A formula left as text: $\\frac{1}{2}$."]   # the text after $\foo{x}$
    assert sorted(problems["brokenLinks"]) == ["index.html: index.html#nowhere (no such anchor)",
                                               "index.html: missing.md"]
    assert problems["brokenImages"] == ["index.html: images/none.png", "index.html: http://example.invalid/x.png"]
    assert problems["network"] == ["index.html: http://example.invalid/x.png"]
