"""Gradients through time (docs/gradients-through-time.md): dL/dh at every distance from the loss, and the figure.

- ``state_gradient_norms`` (suffix runs from the state reached at T-k, the gradient of their initial state) equals
  the ``dh`` that one BPTT loop over the whole sequence carries past step T-k, written out here with
  ``step_backward``;
- examples/gradient_flow.py makes the figure again from Groove, and its numbers are the page's table and what the
  page says of them (the numbers are checked, not the pixels).
"""
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import deeprnn as dr
from deeprnn import layers
from deeprnn.gradient_flow import mean_carry, state_gradient_norms

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "gradients-through-time.md"


def carried_gradients(layer, x, dh_T):
    """dL/dh_t for every t = T .. 0 from one reference forward and a backward loop over reversed t."""
    (_, *_), cache = layer.forward(x)
    d_state = (dh_T,) + tuple(np.zeros_like(dh_T) for _ in range(layer.state_size - 1))
    carried = [d_state[0]]
    for step in reversed(cache.loop):
        _, _, d_state = layer.step_backward(d_state, step, cache.dropout_masks.recurrent)
        carried.append(d_state[0])
    return carried   # carried[k] = dL/dh_{T-k}


@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM"])
def test_the_gradient_at_each_distance_is_the_one_one_bptt_loop_carries_back(cell, float64):
    dr.set_seed(1)
    x = np.random.default_rng(1).standard_normal((3, 12, 2))
    target = np.random.default_rng(2).standard_normal((3, 5))
    layer = getattr(layers, cell)(5, return_state=True, implementation="reference")
    layer.ensure_built(x.shape)
    head = lambda h: (0.5 * float(((h - target) ** 2).sum()), h - target)   # noqa: E731 (L = |h_T - y|^2 / 2)
    distances = [0, 1, 2, 5, 11, 12]
    norms = state_gradient_norms(layer, x, head, distances)["h"]

    (h_T, *_), _ = layer.forward(x)
    carried = carried_gradients(layer, x, h_T - target)
    expected = [float(np.linalg.norm(carried[k], axis=-1).mean()) for k in distances]
    np.testing.assert_allclose(norms, expected, rtol=1e-10)
    assert expected[-1] < expected[0], "the check compares numbers that change with the distance"


def test_distances_outside_the_sequence_and_a_layer_without_its_state_are_refused():
    layer = layers.LSTM(4, return_state=True)
    x = np.zeros((2, 5, 3), dtype="float32")
    layer.ensure_built(x.shape)
    with pytest.raises(ValueError, match=r"outside \[0, 5\]"):
        state_gradient_norms(layer, x, lambda h: (0.0, h), [6])
    no_state = layers.LSTM(4)
    no_state.ensure_built(x.shape)
    with pytest.raises(ValueError, match="return_state=True"):
        state_gradient_norms(no_state, x, lambda h: (0.0, h), [1])
    with pytest.raises(ValueError, match="implementation='reference'"):
        mean_carry(layers.GRU(4, implementation="fused"), x)


def load_example():
    spec = importlib.util.spec_from_file_location("gradient_flow_example", ROOT / "examples" / "gradient_flow.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def page_table():
    """{(task, cell): (initial cells, trained cells)} from the page's table, each "1e-02, 0.99, 0.99"."""
    rows = re.findall(r"^\| (copy|drums) \| (\w+) \| ([^|]+) \| ([^|]+) \|$", PAGE.read_text(), re.M)
    return {(task, cell): (initial.strip(), trained.strip()) for task, cell, initial, trained in rows}


def table_cells(measured, distances):
    h10, h50 = measured["h"][distances.index(10)], measured["h"][distances.index(50)]
    return f"{h50:.0e}, {(h50 / h10) ** (1 / 40):.2f}, {measured['carry']:.2f}"


@pytest.fixture(scope="module")
def regenerated(groove_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradient-flow")
    load_example().main(["--data", str(groove_root), "--out", str(out)])
    return out, json.loads((out / "gradient-flow.json").read_text())


def test_the_figure_is_made_again_and_its_numbers_are_the_pages_table(regenerated):
    out, results = regenerated
    assert (out / "gradient-flow.png").stat().st_size > 20_000
    distances = results["distances"]
    table = page_table()
    assert len(table) == 6
    for (task, cell), (initial, trained) in table.items():
        measured = results[task][cell]
        assert (table_cells(measured["initial"], distances), table_cells(measured["trained"], distances)) == (
            initial, trained), f"docs/gradients-through-time.md's row {task} {cell}: run examples/gradient_flow.py"
    committed = json.loads((ROOT / "docs" / "images" / "gradient-flow.json").read_text())
    assert committed["distances"] == distances and committed["epochs"] == results["epochs"]


def test_at_initialization_each_cell_carries_the_gradient_as_its_gate_bias_says(regenerated):
    """SimpleRNN keeps it (orthogonal U, tanh near 0), the LSTM's f = sigmoid(1) loses less than the GRU's z = 1/2."""
    _, results = regenerated
    k10, k50 = results["distances"].index(10), results["distances"].index(50)
    for task in ("copy", "drums"):
        initial = {cell: results[task][cell]["initial"] for cell in ("SimpleRNN", "GRU", "LSTM")}
        per_step = {cell: (m["h"][k50] / m["h"][k10]) ** (1 / 40) for cell, m in initial.items()}
        assert per_step["SimpleRNN"] > 0.97 and initial["SimpleRNN"]["carry"] > 0.97, task
        assert initial["GRU"]["carry"] == pytest.approx(0.5, abs=0.02), task
        assert initial["LSTM"]["carry"] == pytest.approx(1 / (1 + math.exp(-1)), abs=0.02), task
        assert per_step["SimpleRNN"] > per_step["LSTM"] > per_step["GRU"], (task, per_step)
        for cell in ("GRU", "LSTM"):   # the paths through U add to the direct one, never below the gate's share
            assert per_step[cell] > initial[cell]["carry"], (task, cell, per_step)


def test_after_training_on_drums_the_simple_rnn_saturates_and_the_gated_cells_keep_more(regenerated):
    _, results = regenerated
    k50 = results["distances"].index(50)
    drums = results["drums"]
    assert drums["SimpleRNN"]["trained"]["carry"] < 0.3   # mean 1 - h^2: the state saturated
    assert drums["SimpleRNN"]["trained"]["h"][k50] < 1e-20
    for cell in ("GRU", "LSTM"):
        assert drums[cell]["trained"]["h"][k50] > 1e3 * drums["SimpleRNN"]["trained"]["h"][k50], cell
    assert drums["GRU"]["trained"]["h"][k50] > 1e3 * drums["GRU"]["initial"]["h"][k50]   # the page's "grows"
    assert all(loss < 3.0 for loss in (drums[cell]["loss"][-1] for cell in drums)), "the models learned the drums"


def test_the_example_says_in_one_line_that_data_holds_no_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        load_example().main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1 and f"{tmp_path}: no info.csv there" in error
