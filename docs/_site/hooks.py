"""MkDocs hooks that turn docs/ into the site (``make docs``) while the pages keep reading well on a code host.

- MathJax comes from the docs extra (the ``django-static-mathjax`` wheel, MathJax 3.2.2) and is copied into the
  site, so a reader offline sees typeset formulas.
- A link from a page to a file of the repository (``../deeprnn/layers/lstm.py``) works on a code host; on the site
  it points at a generated page that shows that file, included from the source by ``pymdownx.snippets``.
- A code block marked ``<!-- quote: deeprnn/FILE.py -->`` is a copy on the raw page (tests/test_docs.py holds it to
  the file line by line); on the site it is replaced by the same stretches included from the file itself, with the
  file's own line numbers, so what the site shows cannot drift from the code.

Anything that cannot be resolved is logged as a warning, which ``mkdocs build --strict`` turns into a failure.
"""
import logging
import posixpath
import re
from pathlib import Path

import mathjax
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.deeprnn")

MATHJAX = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
# tex-svg.js is self-contained (the glyphs are SVG paths, no font files); autoload fetches a TeX extension from
# input/tex/extensions the first time a page uses one of its macros.
MATHJAX_FILES = ["tex-svg.js", *(str(path.relative_to(MATHJAX))
                                 for path in sorted((MATHJAX / "input" / "tex" / "extensions").rglob("*.js")))]
SOURCE_LINK = re.compile(r"\]\(((?:\.\./)+[^)#\s]+)(#[^)\s]*)?\)")
QUOTE = re.compile(r"^<!-- quote: (\S+) -->\n```(\w*)\n(.*?)^```$", re.S | re.M)
CODE_PAGES = "code"


def repository_root(config):
    return Path(config["docs_dir"]).resolve().parent


def linked_file(page_uri, link):
    """The repository path a page's relative link names (``docs/...`` for another page), e.g. ``deeprnn/model.py``."""
    return posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), link))


def code_page(path):
    """The site page that shows the repository file ``path`` (e.g. ``deeprnn/model.py``)."""
    return f"{CODE_PAGES}/{path}.md"


def on_config(config):
    # pymdownx.snippets reads base_path from the working folder; the repository root, wherever mkdocs runs from
    config["mdx_configs"].setdefault("pymdownx.snippets", {})["base_path"] = [str(repository_root(config))]
    return config


def on_files(files, config):
    for name in MATHJAX_FILES:
        files.append(File.generated(config, f"assets/mathjax/{name}", abs_src_path=str(MATHJAX / name)))
    root = repository_root(config)
    docs = Path(config["docs_dir"])
    linked = {linked_file(page.relative_to(docs).as_posix(), match.group(1))
              for page in docs.rglob("*.md") for match in SOURCE_LINK.finditer(page.read_text())}
    for path in sorted(linked):
        if not path.startswith("docs/") and (root / path).is_file():
            language = {".py": "python", ".sh": "bash"}.get(Path(path).suffix, "text")
            # out of the search index: the code would outweigh the pages (and every page loads the index)
            content = (f"---\nsearch:\n  exclude: true\n---\n\n"
                       f"# `{path}`\n\nThe file as it is in the repository, included from the source.\n\n"
                       f'```{language} linenums="1"\n--8<-- "{path}"\n```\n')
            files.append(File.generated(config, code_page(path), content=content))
    return files


def normalized(line):
    """The code of a line as tests/test_docs.py compares it: no indentation, no trailing comment."""
    code = line.strip()
    match = re.search(r"\s+#(?=[^\"']*$)", code)
    return code[:match.start()].rstrip() if match else code


def stretches(body, source_lines):
    """The runs of source line numbers (1-based, inclusive) that a quoted block shows, in the page's order.

    Each line of the block is found in the source at or after the previous one; consecutive lines make one run, and
    ``...`` or a jump starts the next. Returns None when a line is not found (tests/test_docs.py says which)."""
    runs, position = [], 0
    for line in body:
        code = normalized(line)
        if code in ("", "..."):
            if code == "..." and runs:
                runs.append(None)
            continue
        found = next((number for number in range(position, len(source_lines))
                      if normalized(source_lines[number]) == code), None)
        if found is None:
            found = next((number for number in range(len(source_lines))
                          if normalized(source_lines[number]) == code), None)
        if found is None:
            return None
        if runs and runs[-1] is not None and runs[-1][1] == found:
            runs[-1][1] = found + 1
        else:
            runs.append([found, found + 1])
        position = found + 1
    return [run for run in runs if run is not None]


def included_quote(match, root, page):
    """The site's version of one quoted block: every stretch it shows, included from the file with its numbers."""
    path, language, body = match.group(1), match.group(2) or "python", match.group(3).split("\n")
    source = root / path
    if not source.is_file():
        log.warning("%s quotes %s, which does not exist", page.file.src_uri, path)
        return match.group(0)
    runs = stretches(body, source.read_text().split("\n"))
    if not runs:
        log.warning("%s quotes lines that are not in %s (tests/test_docs.py names them)", page.file.src_uri, path)
        return match.group(0)
    blocks = []
    for start, end in runs:
        lines = f"line {end}" if end - start == 1 else f"lines {start + 1}-{end}"
        blocks.append(f'```{language} linenums="{start + 1}" title="{path}, {lines}"\n'
                      f'--8<-- "{path}:{start + 1}:{end}"\n```')
    return "\n\n".join(blocks)


def on_page_markdown(markdown, page, config, files):
    root = repository_root(config)
    if not page.file.src_uri.startswith(CODE_PAGES + "/"):
        markdown = QUOTE.sub(lambda match: included_quote(match, root, page), markdown)

    def site_link(match):
        path, anchor = linked_file(page.file.src_uri, match.group(1)), match.group(2) or ""
        if path.startswith("docs/"):
            return match.group(0)   # another page: MkDocs checks it
        if not (root / path).is_file():
            log.warning("%s links to %s, which is not a file of the repository", page.file.src_uri, match.group(1))
            return match.group(0)
        return f"]({posixpath.relpath(code_page(path), posixpath.dirname(page.file.src_uri) or '.')}{anchor})"

    return SOURCE_LINK.sub(site_link, markdown)
