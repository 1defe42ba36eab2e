r"""The docs quote the code exactly: every code block of docs/*.md marked ``<!-- quote: deeprnn/FILE.py -->`` on the
line before it must consist of lines that exist in that file, so a page cannot go on showing code that was
replaced. A Python block without the marker must be an example a reader runs (it starts with an import).

Lines are compared without indentation and without a trailing ``# comment`` (a page may annotate a line); ``...``
stands for lines left out.

The math must render: no control characters (a ``\t``, ``\f``, ``\b`` or ``\a`` that lost its backslash to a
Python string), every ``$`` and ``$$`` closed, and every formula parsed by a real TeX parser (pylatexenc, strict) with
its ``\left``/``\right`` paired. This is the fast check; tests/test_site.py renders the pages in a browser.
"""
import re
from pathlib import Path

import pytest
from pylatexenc.latexwalker import LatexWalker

import deeprnn as dr

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- quote: (\S+) -->$")
NOT_RUN = re.compile(r"^<!-- not run: (.+) -->$")


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


def examples(page):
    """(line number, body, printed lines or None, why it is not run or None) of every Python example of ``page``:
    a block that is not a quote. What it prints is the ``text`` block after it with only "prints" between; a block
    that cannot run here says why on the line before it: ``<!-- not run: needs a CUDA GPU -->``."""
    lines = page.read_text().split("\n")
    blocks = code_blocks(page)
    found = []
    for (number, info, source, body), after in zip(blocks, blocks[1:] + [None]):
        if info != "python" or source:
            continue
        not_run = NOT_RUN.match(lines[number - 2]) if number > 1 else None
        printed = None
        if after is not None and after[1] == "text":
            between = lines[number + len(body) + 1:after[0] - 1]   # past the closing fence, up to the next block
            if [line.strip() for line in between if line.strip()] == ["prints"]:
                printed = after[3]
        found.append((number, body, printed, not_run and not_run.group(1)))
    return found


EXAMPLES = [pytest.param(page, number, body, printed, reason, id=f"{page.name}:{number}")
            for page in PAGES for number, body, printed, reason in examples(page)]


def test_the_pages_hold_examples_that_run():
    assert sum(reason is None for _, _, _, _, reason in (param.values for param in EXAMPLES)) >= 5


def test_an_example_is_read_with_what_it_prints_or_why_it_is_not_run(tmp_path):
    """The runner can fail: it finds the printed text a page shows (here a wrong one) and the reason not to run."""
    page = tmp_path / "page.md"
    page.write_text("```python\nimport math\nprint(math.pi)\n```\n\nprints\n\n```text\n3.15\n```\n\n"
                    "<!-- not run: needs a CUDA GPU -->\n```python\nimport cupy\n```\n")
    (number, body, printed, reason), (_, _, _, why) = examples(page)
    assert (number, printed, reason, why) == (1, ["3.15"], None, "needs a CUDA GPU")
    assert str(__import__("math").pi) != printed[0]


@pytest.mark.parametrize("page, number, body, printed, reason", EXAMPLES)
def test_every_example_runs_and_prints_what_the_page_shows(page, number, body, printed, reason, tmp_path,
                                                          monkeypatch, capsys, request):
    """Run in a fresh namespace inside a temporary folder (a file it writes lands there); the Groove examples read
    the shared copy, and are skipped without it."""
    if reason is not None:
        assert len(reason.split()) >= 3, f"{page.name}:{number}: say why the example is not run"
        pytest.skip(f"{page.name}:{number} is marked not runnable: {reason}")
    code = "\n".join(body)
    if "groove" in code:
        monkeypatch.setenv("DEEPRNN_GROOVE", request.getfixturevalue("groove"))
    monkeypatch.chdir(tmp_path)
    dr.clear_session()  # a page's example is a program of its own: layer names start afresh, whatever ran before
    exec(compile(code, f"{page.name}:{number}", "exec"), {"__name__": "__docs__"})
    if printed is not None:
        shown = "\n".join(printed).strip()
        assert capsys.readouterr().out.strip() == shown, f"{page.name}:{number} prints something else than the page"


def test_the_check_catches_a_line_that_was_replaced(tmp_path):
    """The check can fail: a page quoting a line that is not in the file is reported."""
    page = tmp_path / "page.md"
    page.write_text("<!-- quote: deeprnn/optimizers.py -->\n```python\nvar.value -= lr * g  # the old update\n```\n")
    (number, _, source, body), = code_blocks(page)
    code = {normalized(line) for line in (ROOT / source).read_text().split("\n")}
    assert [line for line in body if normalized(line) not in code] == ["var.value -= lr * g  # the old update"]


CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # a tab too: a "\t" that lost its backslash
FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)


def control_characters(text):
    """(line number, repr) of every control character but the newline (a tab included)."""
    return [(text.count("\n", 0, match.start()) + 1, repr(match.group())) for match in CONTROL.finditer(text)]


def formulas(text):
    """(line number, TeX) of every ``$$...$$`` and ``$...$`` outside code; a ``$`` left open raises ValueError."""
    prose = CODE_SPAN.sub(lambda match: re.sub(r"[^\n]", " ", match.group()),
                          FENCE.sub(lambda match: re.sub(r"[^\n]", " ", match.group()), text))
    found, index = [], 0
    while (start := prose.find("$", index)) >= 0:
        if prose[start - 1:start] == "\\":  # an escaped dollar is text
            index = start + 1
            continue
        line = prose.count("\n", 0, start) + 1
        delimiter = "$$" if prose.startswith("$$", start) else "$"
        end = prose.find(delimiter, start + len(delimiter))
        if end < 0 or (delimiter == "$" and "\n\n" in prose[start:end]):
            raise ValueError(f"line {line}: {delimiter} is never closed")
        found.append((line, prose[start + len(delimiter):end]))
        index = end + len(delimiter)
    return found


def parse_error(tex):
    """Why ``tex`` is not a formula (unbalanced braces or environments, a \\left without its \\right), or None."""
    try:
        LatexWalker(tex, tolerant_parsing=False).get_latex_nodes()
    except Exception as error:  # pylatexenc's parse errors have no common base below Exception
        return str(error).split("\n")[0]
    lefts, rights = len(re.findall(r"\\left\b", tex)), len(re.findall(r"\\right\b", tex))
    if lefts != rights:
        return f"{lefts} \\left and {rights} \\right"
    if re.search(r"\\begin\{\w+\}\s*\[|\\\\\[", tex):
        # MathJax takes it for \begin{aligned}[t]'s position (even on the next line) or \\[2pt]'s spacing (only
        # right after the \\): the row loses it
        return "a [ after \\begin{...} or right after \\\\ is read as an optional argument: write {[...]}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_a_page_holds_no_control_characters(page):
    assert not control_characters(page.read_text()), f"{page.name}: control characters at (line, char) " + str(
        control_characters(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_formula_is_closed_and_parses_as_tex(page):
    bad = [(line, tex.strip()[:60], parse_error(tex)) for line, tex in formulas(page.read_text()) if parse_error(tex)]
    assert not bad, f"{page.name}: formulas that do not parse (line, formula, why): {bad}"


def test_the_math_checks_fail_on_what_broke_the_pages():
    """The checks can fail: the backslash Python ate, a dollar left open, a brace left open, a lone \\left."""
    broken = "- cosine: $" + "\text{lr}_e = \tfrac{1}{2}" + "$ and $" + "\alpha" + "$.\n"  # as a plain string
    assert [char for _, char in control_characters(broken)] == ["'\\t'", "'\\t'", "'\\x07'"]
    assert [line for line, _ in formulas("a `$x` is code\n\n$x_1$ and\n$$\ny\n$$\n")] == [3, 4]
    with pytest.raises(ValueError, match="line 2: \\$ is never closed"):
        formulas("fine\nthe price $5 and more\n\nnext paragraph $x$\n")
    assert "expecting '}'" in parse_error(r"\frac{1}{N")
    assert parse_error(r"\left( x") == "1 \\left and 0 \\right"
    assert "optional argument" in parse_error("\\begin{aligned}\n[h_z \\mid h_r] &= h U\n\\end{aligned}")
    assert "optional argument" in parse_error("\\begin{aligned}\na &= b \\\\[a] &= b\n\\end{aligned}")
    assert parse_error("\\begin{aligned}\na &= b \\\\\n[a] &= b\n\\end{aligned}") is None   # a new row
    assert parse_error("\\begin{aligned}\n{[h_z \\mid h_r]} &= h U\n\\end{aligned}") is None
    assert parse_error(r"\frac{\partial L}{\partial z_k} = \big(p_k - t_k\big)") is None
