"""A checkpoint carries its tokenizer and config; a checkpoint whose parts do not fit is a clear error."""
import numpy
import pytest

from deeprnn import backend
from deeprnn.music import DrumGridTokenizer
from deeprnn.pipeline.checkpoints import CheckpointError, check_resume, load_checkpoint, save_checkpoint
from deeprnn.pipeline.recipes import TrainConfig, get_recipe


def tiny(config_changes=None):
    backend.set_seed(0)
    config = TrainConfig(recipe="drums", units=6, embedding_dim=4, layers=2, **(config_changes or {})).resolved()
    return config, get_recipe("drums").build_model(config, DrumGridTokenizer().vocab_size)


def test_a_checkpoint_round_trips_model_tokenizer_and_config(tmp_path):
    config, model = tiny()
    tokenizer = DrumGridTokenizer()
    save_checkpoint(tmp_path / "c.npz", model, tokenizer, config, "/data/groove", {"epoch": 3})
    checkpoint = load_checkpoint(tmp_path / "c.npz")
    assert checkpoint.tokenizer == tokenizer and checkpoint.config == config
    assert checkpoint.source == "/data/groove" and checkpoint.training == {"epoch": 3}
    for saved, loaded in zip(model.get_weights(), checkpoint.model.get_weights()):
        assert numpy.array_equal(saved, loaded)


def test_a_tokenizer_with_another_vocabulary_is_refused(tmp_path):
    config, model = tiny()
    # the same model saved with a tokenizer of 518 tokens (4 velocity bins): its 514-way output cannot serve it
    save_checkpoint(tmp_path / "c.npz", model, DrumGridTokenizer(velocity_bins=4), config, "/data")
    with pytest.raises(CheckpointError, match="embedding takes 514 token ids, the tokenizer has 518"):
        load_checkpoint(tmp_path / "c.npz")


def test_a_config_that_does_not_match_the_layers_is_refused(tmp_path):
    config, model = tiny()
    config.units = 16
    save_checkpoint(tmp_path / "c.npz", model, DrumGridTokenizer(), config, "/data")
    with pytest.raises(CheckpointError, match="has 6 units, the config says 16"):
        load_checkpoint(tmp_path / "c.npz")


def test_a_plain_model_file_is_not_a_music_checkpoint(tmp_path):
    _, model = tiny()
    model.save(tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match="not a deeprnn music checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.npz")


def test_resume_refuses_other_settings_but_allows_more_epochs():
    saved, _ = tiny()
    check_resume(TrainConfig(recipe="drums", epochs=50, units=6), saved, "last.npz")
    with pytest.raises(CheckpointError, match=r"--units 6 \(this run asks for 32\)"):
        check_resume(TrainConfig(recipe="drums", units=32), saved, "last.npz")
