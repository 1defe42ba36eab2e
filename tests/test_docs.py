"""The docs quote the code exactly: every code block of docs/*.md marked ``<!-- quote: deeprnn/FILE.py -->`` on the
line before it must consist of lines that exist in that file, so a page cannot go on showing code that was
replaced. A Python block without the marker must be an example a reader runs (it starts with an import).

Lines are compared without indentation and without a trailing ``# comment`` (a page may annotate a line); ``...``
stands for lines left out.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- quote: (\S+) -->$")


def code_blocks(page):
    """(line number, info string, marker path or None, body lines) of every fenced block of ``page``."""
    lines = page.read_text().split("\n")
    blocks, index = [], 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```") and line.strip() != "```":
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            marker = MARKER.match(lines[index - 1]) if index else None
            blocks.append((index + 1, line[3:].strip(), marker and marker.group(1), lines[index + 1:end]))
            index = end
        index += 1
    return blocks


def normalized(line):
    """The code of a line: no indentation, no trailing comment (a '#' inside a string is kept)."""
    code = line.strip()
    match = re.search(r"\s+#(?=[^\"']*$)", code)
    return code[:match.start()].rstrip() if match else code


PAGES = sorted((ROOT / "docs").glob("*.md"))
QUOTES = [pytest.param(page, number, source, body, id=f"{page.name}:{number}")
          for page in PAGES for number, _, source, body in code_blocks(page) if source]


def test_the_docs_quote_code():
    assert len(QUOTES) >= 10, "the marker convention is in use"


@pytest.mark.parametrize("page, number, source, body", QUOTES)
def test_every_quoted_line_exists_in_the_file_it_names(page, number, source, body):
    path = ROOT / source
    assert path.is_file(), f"{page.name}:{number} quotes {source}, which does not exist"
    code = {normalized(line) for line in path.read_text().split("\n")}
    missing = [line for line in body if normalized(line) not in code and normalized(line) not in ("", "...")]
    assert not missing, f"{page.name}:{number}: lines not in {source}:\n" + "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_an_unmarked_python_block_is_a_runnable_example(page):
    for number, info, source, body in code_blocks(page):
        if info == "python" and not source:
            first = next((line for line in body if line.strip()), "")
            assert first.startswith(("import ", "from ")), (
                f"{page.name}:{number}: a Python block that quotes the library needs <!-- quote: deeprnn/... --> "
                "on the line before it; an example starts with its imports")


def test_the_check_catches_a_line_that_was_replaced(tmp_path):
    """The check can fail: a page quoting a line that is not in the file is reported."""
    page = tmp_path / "page.md"
    page.write_text("<!-- quote: deeprnn/optimizers.py -->\n```python\nvar.value -= lr * g  # the old update\n```\n")
    (number, _, source, body), = code_blocks(page)
    code = {normalized(line) for line in (ROOT / source).read_text().split("\n")}
    assert [line for line in body if normalized(line) not in code] == ["var.value -= lr * g  # the old update"]
