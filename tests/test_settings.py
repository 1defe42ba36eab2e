"""Every setting is declared once (pipeline/settings.py): the command line's flags, their --help, TrainConfig's
checks and the recipes' defaults are read from the declarations, so no default or range is written twice."""
import inspect
import math

import numpy
import pytest

from deeprnn.cli import COMMAND_SETTINGS, add_settings, build_parser, main
from deeprnn.errors import SettingError
from deeprnn.music import read_events, write_midi
from deeprnn.pipeline import (RECIPES, Sampling, TrainConfig, evaluate_checkpoint, generate_from_checkpoint,
                              greedy_versus_sampled)
from deeprnn.pipeline.expressive_statistics import generation_distributions
from deeprnn.pipeline.generation import check_midi_length
from deeprnn.pipeline.recipes import CELLS, RESUMABLE_CHANGES
from deeprnn.pipeline.settings import (CELL_NAMES, EVALUATE_SETTINGS, GENERATE_SETTINGS, RECIPE_NAMES,
                                       TRAIN_SETTINGS, Setting, train_setting)


def help_brackets(command, monkeypatch, capsys):
    """{flag: the last [...] of its --help entry} of ``deeprnn COMMAND --help`` as printed."""
    monkeypatch.setenv("COLUMNS", "2000")  # one line per entry where argparse allows it
    with pytest.raises(SystemExit):
        main([command, "--help"])
    entries, text = {}, capsys.readouterr().out
    current = None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
    return {flag: entry[entry.rfind("[") + 1:entry.rfind("]")] for flag, entry in entries.items() if "[" in entry}


def mismatches(brackets):
    """Flags whose --help default is not what ``TrainConfig(recipe=...).resolved()`` holds for every recipe."""
    wrong = []
    for setting in TRAIN_SETTINGS:
        if setting.default_text is not None:
            continue
        used = {name: getattr(TrainConfig(recipe=name).resolved(), setting.name) for name in RECIPE_NAMES}
        if setting.name == "recipe":
            used = {name: TrainConfig().resolved().recipe for name in RECIPE_NAMES}
        values = list(used.values())
        expected = (setting.format(values[0]) if all(value == values[0] for value in values)
                    else ", ".join(f"{name} {setting.format(value)}" for name, value in used.items()))
        if brackets.get(setting.flag) != expected:
            wrong.append((setting.flag, brackets.get(setting.flag), expected))
    return wrong


def test_every_train_flag_shows_in_its_help_the_default_each_recipe_really_uses(monkeypatch, capsys):
    brackets = help_brackets("train", monkeypatch, capsys)
    assert brackets["--seq-len"] == "drums 64, groove 128, seed 100"
    assert brackets["--lr"] == "drums 0.0056, groove 0.0056, seed 0.001"
    assert mismatches(brackets) == []


def test_the_help_comparison_fails_when_a_recipe_uses_another_default_than_declared(monkeypatch, capsys):
    brackets = help_brackets("train", monkeypatch, capsys)
    monkeypatch.setitem(RECIPES["groove"].defaults, "seq_len", 99)  # a default written a second time
    assert mismatches(brackets) == [("--seq-len", "drums 64, groove 128, seed 100", "drums 64, groove 99, seed 100")]


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_generate_and_evaluate_flags_show_their_declared_defaults(command, monkeypatch, capsys):
    brackets = help_brackets(command, monkeypatch, capsys)
    for setting in COMMAND_SETTINGS[command]:
        if not setting.is_switch and not setting.required:
            assert brackets[setting.flag] == setting.shown_default(), setting.name


def test_the_library_functions_default_to_the_declared_values():
    """What the commands call, called without the flags, uses what --help shows."""
    called = {generate_from_checkpoint: {"num_steps": ("generate", "num_steps")},
              evaluate_checkpoint: {"split": ("evaluate", "split"), "stride": ("evaluate", "stride")},
              greedy_versus_sampled: {"seed": ("evaluate", "seed"), "temperature": ("generate", "temperature")},
              generation_distributions: {"primers": ("evaluate", "primers"), "seed": ("evaluate", "seed")}}
    for function, parameters in called.items():
        signature = inspect.signature(function).parameters
        for parameter, (command, name) in parameters.items():
            setting = next(setting for setting in COMMAND_SETTINGS[command] if setting.name == name)
            assert signature[parameter].default == setting.default, (function.__name__, parameter)
    generation_stats = next(setting for setting in EVALUATE_SETTINGS if setting.name == "generation_stats")
    assert inspect.signature(greedy_versus_sampled).parameters["num_steps"].default == generation_stats.const
    assert Sampling().temperature == next(s for s in GENERATE_SETTINGS if s.name == "temperature").default


def test_the_declarations_name_what_the_library_implements():
    assert tuple(RECIPES) == RECIPE_NAMES and tuple(CELLS) == CELL_NAMES
    assert [field for field in TrainConfig.__dataclass_fields__] == [setting.name for setting in TRAIN_SETTINGS]
    assert RESUMABLE_CHANGES == ("epochs", "time_budget", "patience")  # how long to train, nothing else
    assert set(TrainConfig(recipe="seed").resolved().to_dict()) == {setting.name for setting in TRAIN_SETTINGS}


def out_of_range(setting):
    """Values just outside each bound of a numeric setting (with the bound they break)."""
    values = []
    if setting.minimum is not None:
        values.append(setting.minimum - (1 if setting.type is int else setting.minimum / 2 or 1e-3))
    if setting.maximum is not None:
        values.append(setting.maximum + 1)
    if setting.above is not None:
        values.append(setting.above)
    if setting.below is not None:
        values.append(setting.below)
    return [value for value in values if value not in setting.allowed]


NUMERIC = [(command, setting) for command, settings in COMMAND_SETTINGS.items() for setting in settings
           if setting.type in (int, float)]
REQUIRED = {"train": [], "generate": ["--checkpoint", "nope.npz"], "evaluate": ["--checkpoint", "nope.npz"], "sweep": []}


@pytest.mark.parametrize("command, setting", NUMERIC, ids=[f"{c}{s.flag}" for c, s in NUMERIC])
def test_every_numeric_flag_refuses_values_outside_its_range_in_one_line(command, setting, capsys):
    assert out_of_range(setting), f"{setting.flag} has no range"
    for value in out_of_range(setting):
        word = str(int(value)) if setting.type is int else repr(float(value))
        with pytest.raises(SystemExit) as exit:
            main([command, *REQUIRED[command], setting.flag, word])
        errors = capsys.readouterr().err.strip().splitlines()
        assert exit.value.code == 2 and len(errors) == 1, errors
        assert errors[0].startswith(f"deeprnn {command}: error: argument {setting.flag}: must be "), errors


GROWING = ["layers", "units", "embedding_dim", "seq_len", "batch_size", "epochs", "max_files"]


@pytest.mark.parametrize("name", GROWING)
def test_every_number_whose_work_grows_with_it_has_a_ceiling(name):
    assert train_setting(name).maximum is not None
    with pytest.raises(SettingError, match=f"--{name.replace('_', '-')} must be an integer >= 1 and <= "):
        TrainConfig(**{name: 99999999999999999999999})


def test_generate_and_evaluate_counts_have_ceilings():
    names = {"generate": ["num_steps", "primer_steps", "top_k"], "evaluate": ["generation_stats", "primers", "stride"]}
    for command, settings in (("generate", GENERATE_SETTINGS), ("evaluate", EVALUATE_SETTINGS)):
        by_name = {setting.name: setting for setting in settings}
        for name in names[command]:
            assert by_name[name].maximum is not None, name


@pytest.mark.parametrize("word", ["1e-320", "1e-4", "101", "nan", "-1"])
def test_a_temperature_is_0_or_between_a_thousandth_and_100(word, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--checkpoint", "nope.npz", "--temperature", word])
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"deeprnn generate: error: argument --temperature: must be 0 or a finite number >= 0.001 and "
                      f"<= 100, got {float(word)!r} (see deeprnn generate --help)"]


@pytest.mark.parametrize("values, message", [
    (dict(units=0), "--units must be an integer >= 1 and <= 4096, got 0"),
    (dict(layers=65), "--layers must be an integer >= 1 and <= 64, got 65"),
    (dict(time_budget=-1.0), "--time-budget must be a finite number > 0 and <= 525600, got -1.0"),
    (dict(lr=math.inf), "--lr must be a finite number > 0, got inf"),
    (dict(bar_position="yes"), "--bar-position must be True or False, got 'yes'"),
    (dict(recipe="jazz"), "--recipe must be one of drums, groove, seed, got 'jazz'"),
    (dict(data=3), "--data must be text, got 3"),
])
def test_a_bad_value_in_the_library_is_a_setting_error_naming_the_flag(values, message):
    with pytest.raises(SettingError) as error:
        TrainConfig(**values)
    assert str(error.value) == message


def test_a_setting_checks_returns_and_describes_its_value():
    seq_len = train_setting("seq_len")
    assert seq_len.flag == "--seq-len" and seq_len.type is int and seq_len.check(32) == 32
    assert seq_len.default_for("groove") == 128 and seq_len.default_for("drums") == 64
    assert train_setting("lr").check(1) == 1.0 and isinstance(train_setting("lr").check(1), float)
    assert train_setting("cell").choices == CELL_NAMES
    with pytest.raises(SettingError, match=r"^unknown setting sequence_length; known: data, recipe, cell, "):
        train_setting("sequence_length")


def test_a_new_setting_is_one_declaration():
    """What the conditioning issue will do: one Setting, and the parser, help and checks follow."""
    extra = Setting("mood", "a made-up setting for this test", choices=("none", "calm"), default="none")
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    add_settings(commands.choices["train"], (extra,))
    assert parser.parse_args(["train", "--mood", "calm"]).mood == "calm"
    assert "a made-up setting for this test [none]" in commands.choices["train"].format_help()
    with pytest.raises(SettingError, match="--mood must be one of none, calm, got 'x'"):
        extra.check("x")


@pytest.mark.parametrize("recipe_name, most", [("drums", 32764), ("groove", 32764), ("seed", 16382)])
def test_a_num_steps_the_midi_file_could_not_hold_is_refused_before_generating(recipe_name, most):
    """8192 quarter notes in a MIDI file: 4 grid steps a quarter (drums, groove), 2 tokens a quarter (seed); one
    quarter kept for the last note."""
    recipe = RECIPES[recipe_name]
    tokenizer = recipe.make_tokenizer()
    check_midi_length(recipe, tokenizer, most, primer_tokens=0, phase=0.0)
    with pytest.raises(SettingError, match=rf"^--num-steps {most + 1}: .* give at most {most}$"):
        check_midi_length(recipe, tokenizer, most + 1, primer_tokens=0, phase=0.0)
    with pytest.raises(SettingError, match=rf"give at most {most - 100} \(the primer is included\)$"):
        check_midi_length(recipe, tokenizer, most, primer_tokens=100, phase=0.0)


def test_the_longest_drums_output_allowed_is_written(tmp_path):
    recipe, tokenizer = RECIPES["drums"], RECIPES["drums"].make_tokenizer()
    steps = numpy.full(32764, 1)   # the step token that strikes one class: a hit at every step
    events = recipe.decode_generated(steps, tokenizer, numpy.random.default_rng(0))
    write_midi(events, tmp_path / "longest.mid")
    assert len(read_events(tmp_path / "longest.mid").events) == 32764
