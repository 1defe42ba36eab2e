"""A sweep's search space, read from a small TOML file and checked against the train settings before any work.

    recipe = "drums"                              # a fixed value: every trial trains with it
    max_files = 3
    lr = {float = [1e-4, 1e-2], log = true}       # a float range, sampled on a log scale
    units = {int = [64, 512], step = 64}          # an integer range (optionally a step or a log scale)
    dropout = {float = [0.2, 0.6]}
    cell = {choices = ["lstm", "gru"]}            # a categorical setting

Every name is a setting of ``deeprnn train`` (declared in ``pipeline.settings.TRAIN_SETTINGS``); every fixed
value, choice and both ends of every range go through that declaration's check, the one the train command's flags
go through, so a range outside a setting's declared range is the same one-line error
``--dropout must be a finite number >= 0 and < 1, got 1.0``, here prefixed with the space file's name. Optuna's
distributions are built from it: the study samples the same names the objective reads (``FloatDistribution``,
``IntDistribution``, ``CategoricalDistribution``).

``time_budget`` is the sweep's ``--time-budget`` and the seed is the sweep's (``--seeds``): neither may be a
searched dimension (a fixed ``seed`` is the first seed of every configuration).
"""
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from optuna.distributions import (CategoricalDistribution, FloatDistribution, IntDistribution,
                                  distribution_to_json)

from ..errors import SettingError
from ..pipeline.recipes import TrainConfig
from ..pipeline.settings import TRAIN_SETTINGS, train_setting

# Set by the sweep itself, never by the space: the run folder (--out of each trial) and its per-trial budget.
NOT_IN_SPACE = {"time_budget": "the sweep's --time-budget sets it (minutes per trial)"}
NOT_SEARCHED = {"seed": "the sweep's --seeds varies it", "data": "every trial reads the same data"}
KINDS = ("float", "int", "choices")


@dataclass
class SearchSpace:
    """Fixed settings and Optuna distributions, keyed by TrainConfig field names."""

    fixed: dict
    distributions: dict
    source: str = ""

    def config(self, params, seed=None, time_budget=None):
        """The TrainConfig of one trial: the fixed settings, the sampled ``params``, a seed and a budget."""
        values = {**self.fixed, **params, "time_budget": time_budget}
        if seed is not None:
            values["seed"] = seed
        return TrainConfig(**values)

    @property
    def first_seed(self):
        return self.fixed.get("seed", 0)

    def to_json(self, without=()):
        """A canonical text of the space (less the fixed settings named in ``without``): the study keeps it and a
        restart with another space is refused."""
        document = {"fixed": {name: value for name, value in self.fixed.items() if name not in without},
                    "distributions": {name: json.loads(distribution_to_json(distribution))
                                      for name, distribution in sorted(self.distributions.items())}}
        return json.dumps(document, sort_keys=True)


def read_space(path):
    """The SearchSpace in the TOML file ``path``; a SettingError naming the file and the setting otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingError(f"--space {path}: {error.strerror or error}") from None
    try:
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingError(f"--space {path}: not a TOML file ({error})") from None
    return parse_space(document, str(path))


def parse_space(document, where="the space"):
    """A SearchSpace from a parsed TOML document (a dict of setting name -> fixed value or distribution table)."""
    known = [setting.name for setting in TRAIN_SETTINGS]
    fixed, distributions = {}, {}
    for name, value in document.items():
        if name not in known:
            raise SettingError(f"{where}: {name!r} is not a train setting (one of: {', '.join(known)})")
        if name in NOT_IN_SPACE:
            raise SettingError(f"{where}: {name} is not part of a space: {NOT_IN_SPACE[name]}")
        if isinstance(value, dict):
            if name in NOT_SEARCHED:
                raise SettingError(f"{where}: {name} cannot be searched: {NOT_SEARCHED[name]}")
            distributions[name] = distribution(name, value, where)
        else:
            check_value(name, value, where)
            fixed[name] = value
    if not distributions:
        raise SettingError(f"{where}: nothing to search (give at least one setting a range or choices, "
                           "e.g. lr = {float = [1e-4, 1e-2], log = true})")
    space = SearchSpace(fixed, distributions, where)
    check_recipe(space, where)
    return space


def check_recipe(space, where):
    """Settings the recipe refuses together (``--bar-position`` with the seed recipe): each end of each range and
    each choice, the other dimensions at their first value, resolved as a trial's config is."""
    first = {name: ends(distribution)[0] for name, distribution in space.distributions.items()}
    for name, distribution in space.distributions.items():
        for value in ends(distribution):
            try:
                space.config({**first, name: value}).resolved()
            except SettingError as error:
                raise SettingError(f"{where}: {error}") from None


def ends(distribution):
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def distribution(name, table, where):
    """The Optuna distribution one TOML table declares, each value checked as the train flag would check it."""
    kinds = [kind for kind in KINDS if kind in table]
    if len(kinds) != 1:
        raise SettingError(f"{where}: {name} needs exactly one of float = [low, high], int = [low, high] or "
                           f"choices = [...], got {sorted(table)}")
    kind = kinds[0]
    extra = set(table) - {kind, "log", "step"}
    if extra or (kind == "choices" and set(table) != {"choices"}):
        raise SettingError(f"{where}: {name}: unknown keys {sorted(set(table) - {kind})} for a {kind} setting")
    if kind == "choices":
        choices = table["choices"]
        if not isinstance(choices, list) or not choices:
            raise SettingError(f"{where}: {name}: choices must be a non-empty list, got {choices!r}")
        for choice in choices:
            check_value(name, choice, where)
        return CategoricalDistribution(choices)
    bounds = table[kind]
    log, step = table.get("log", False), table.get("step")
    number = int if kind == "int" else (int, float)
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(end, number) and not isinstance(end, bool) for end in bounds)):
        raise SettingError(f"{where}: {name}: {kind} = [low, high] needs two {kind} numbers, got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise SettingError(f"{where}: {name}: the range [{low}, {high}] is empty (low must be < high)")
    if not isinstance(log, bool):
        raise SettingError(f"{where}: {name}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SettingError(f"{where}: {name}: a log scale needs low > 0, got {low}")
    if step is not None and (log or not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise SettingError(f"{where}: {name}: step must be a positive {kind} and cannot go with log, got {step!r}")
    for end in (low, high):
        check_value(name, float(end) if kind == "float" else end, where)
    if kind == "int":
        return IntDistribution(low, high, log=log, step=step or 1)
    return FloatDistribution(float(low), float(high), log=log, step=step)


def check_value(name, value, where):
    """The train setting's own check (the one its flag goes through), its message prefixed by where."""
    try:
        train_setting(name).check(value)
    except SettingError as error:
        raise SettingError(f"{where}: {error}") from None
