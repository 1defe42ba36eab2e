"""The README's Quick example prints what the README says it prints: each ```python block of the section is run
(in order, in one namespace, as a reader pasting them would) and its output compared with the ```text block after
it."""
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NUMBER = re.compile(r"-?\d+\.\d+")
# Printed losses are rounded to 4 decimals; a BLAS with another summation order may move the last digit.
NUMBER_TOLERANCE = 2e-4


def section(text, title):
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def code_blocks(text):
    """[(language, body)] of the fenced blocks, in order."""
    return [(match.group(1), match.group(2)) for match in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def example_pairs():
    """[(python code, expected output)]: each python block of the Quick example and the text block after it."""
    blocks = code_blocks(section(README.read_text(encoding="utf-8"), "Quick example"))
    pairs = []
    for (language, code), (next_language, expected) in zip(blocks, blocks[1:]):
        if language == "python":
            assert next_language == "text", "every Quick example block is followed by what it prints"
            pairs.append((code, expected))
    return pairs


def same_output(printed, expected):
    """Equal text, and numbers equal within NUMBER_TOLERANCE."""
    if NUMBER.sub("#", printed.strip()) != NUMBER.sub("#", expected.strip()):
        return False
    return all(abs(float(a) - float(b)) <= NUMBER_TOLERANCE
               for a, b in zip(NUMBER.findall(printed), NUMBER.findall(expected)))


def test_the_quick_example_has_code_and_its_printed_output():
    pairs = example_pairs()
    assert len(pairs) >= 2
    assert all(code.strip() and expected.strip() for code, expected in pairs)


def test_quick_example_prints_what_the_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves model.npz in the working folder
    namespace = {"__name__": "__readme__"}
    for code, expected in example_pairs():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), namespace)
        assert same_output(printed.getvalue(), expected), (
            f"README block printed:\n{printed.getvalue()}\nthe README shows:\n{expected}")


@pytest.mark.parametrize("printed, expected, same", [
    ("loss: [3.0862, 2.81]\nTrue\n", "loss: [3.0862, 2.81]\nTrue", True),
    ("loss: [3.0863, 2.81]", "loss: [3.0862, 2.81]", True),
    ("loss: [3.0962, 2.81]", "loss: [3.0862, 2.81]", False),
    ("loss: [3.0862, 2.81]\nFalse", "loss: [3.0862, 2.81]\nTrue", False),
    ("(4, 10, 8)", "(4, 10, 3)", False),
])
def test_output_comparison_tolerates_only_the_last_digit_of_a_number(printed, expected, same):
    assert same_output(printed, expected) is same
