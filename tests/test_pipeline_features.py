"""The bar-position input: Magenta's binary step counters next to the token embedding, a layer of the library."""
import subprocess
import sys
from pathlib import Path

import numpy

import deeprnn as dr
from deeprnn import gradcheck, saving
from deeprnn.layers import StepCounterEmbedding


def test_counters_are_the_binary_digits_of_the_step_as_plus_minus_one():
    layer = StepCounterEmbedding(10, 3, counter_bits=4)
    x = numpy.array([[[2, 0], [2, 5], [7, 15], [1, -1], [1, 16]]])
    y = layer(x)
    assert y.shape == (1, 5, 3 + 4)
    counters = y[0, :, 3:]
    # bits, least significant first: 0 -> ----, 5 = 0101 -> +-+-, 15 -> ++++, START's -1 = 15 mod 16, 16 = 0 mod 16
    assert counters.tolist() == [[-1, -1, -1, -1], [1, -1, 1, -1], [1, 1, 1, 1], [1, 1, 1, 1], [-1, -1, -1, -1]]
    assert numpy.array_equal(y[0, :, :3], layer.E.value[[2, 2, 7, 1, 1]])


def test_embedding_gradient_equals_central_differences(float64):
    layer = StepCounterEmbedding(6, 4, counter_bits=3)
    x = numpy.random.default_rng(0).integers(0, 6, (3, 5, 2))
    errors = gradcheck.check_layer_gradients(layer, x)
    assert errors and max(errors.values()) < 1e-7


def test_a_model_with_the_layer_saves_and_loads(tmp_path):
    dr.set_seed(0)
    model = dr.Sequential([StepCounterEmbedding(8, 3), dr.layers.LSTM(4, return_sequences=True),
                           dr.layers.Dense(8), dr.layers.Activation("softmax")])
    model.build((None, None, 2))
    model.save(tmp_path / "m.npz")
    loaded = saving.load_model(tmp_path / "m.npz")
    x = numpy.stack([numpy.arange(5) % 8, numpy.arange(5) - 1], axis=-1)[None]
    assert numpy.allclose(model(x), loaded(x))


def test_every_file_deeprnn_train_writes_opens_in_a_process_that_imports_only_deeprnn(tmp_path):
    """best.npz and last.npz of a drums run with --bar-position (the default) hold a StepCounterEmbedding."""
    from deeprnn.music import DrumGridTokenizer
    from deeprnn.pipeline.checkpoints import save_checkpoint
    from deeprnn.pipeline.recipes import TrainConfig, get_recipe
    dr.set_seed(0)
    config = TrainConfig(recipe="drums", units=4, embedding_dim=3, layers=1).resolved()
    model = get_recipe("drums").build_model(config, DrumGridTokenizer().vocab_size)
    assert isinstance(model.layers[0], StepCounterEmbedding)
    save_checkpoint(tmp_path / "best.npz", model, DrumGridTokenizer(), config, "/data", include_optimizer=False)
    save_checkpoint(tmp_path / "last.npz", model, DrumGridTokenizer(), config, "/data", {"epoch": 1})
    script = ("import sys, deeprnn\n"
              "for path in sys.argv[1:]:\n"
              "    print(type(deeprnn.load_model(path).layers[0]).__name__)\n"
              "assert not any(name.startswith('deeprnn.pipeline') for name in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "best.npz"), str(tmp_path / "last.npz")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["StepCounterEmbedding", "StepCounterEmbedding"]
