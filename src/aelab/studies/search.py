"""A study's `[search]` table: what `aelab tune` searches over, and for what.

    [search]
    trials = 30                      # trials in all, shared by every worker on the storage
    minutes = 0                      # > 0: a worker starts no trial after this many minutes
    objectives = { cond_acc = "maximize", neg_elbo = "minimize" }   # report metrics (report.METRICS)
    sampler = "tpe"                  # tpe | random | nsga2
    pruner = "median"                # median (on the validation loss per epoch) | none; one objective only
    seed = 0

    [search.space]                   # config keys: any setting, a part's name or a part's setting
    "train.lr" = { low = 5e-4, high = 5e-3, log = true }          # a float on a log scale
    "model.objective.beta" = { low = 1.0, high = 3.0 }             # a float
    "train.batch_size" = { low = 64, high = 256, step = 64 }       # an int (low and high ints)
    "model.network.hidden" = { choices = [[1024], [2048]] }        # one of these values
    "model.prior.name" = { choices = ["standard", "conditional"] }

A trial's config is the study's base config, its `set`, `aelab tune --set`, then the trial's
values, applied in the order the space lists them (so a part's name comes before its settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from aelab import config
from aelab.config import RunConfig
from aelab.errors import AelabError
from aelab.settings import coerce

SEARCH_KEYS = {"trials", "minutes", "objectives", "sampler", "pruner", "seed", "space"}
DIRECTIONS = ("minimize", "maximize")
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("median", "none")


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (`log` for a log scale, `step` for a grid),
    or `choices` (TOML values: numbers, strings, lists)."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @property
    def kind(self) -> str:
        if self.choices:
            return "choice"
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"

    def suggest(self, trial) -> object:
        """The trial's value (Optuna's `suggest_*`); a choice is held by Optuna as its TOML text."""
        if self.choices:
            return trial.suggest_categorical(self.key, [config.toml_value(c) for c in self.choices])
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def override(self, value: object) -> str:
        """`key=value` for config.with_overrides, from a value `suggest` gave."""
        return f"{self.key}={value if self.choices else config.toml_value(value)}"


@dataclass(frozen=True)
class Search:
    space: tuple[Param, ...]
    objectives: tuple[tuple[str, str], ...]  # (report metric, "minimize" | "maximize")
    trials: int = 20
    minutes: float = 0.0
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.objectives]

    def overrides(self, params: dict) -> list[str]:
        """A trial's `key=value` overrides, from its params (Optuna's `trial.params`), in space order."""
        return [p.override(params[p.key]) for p in self.space if p.key in params]


def _param(key: str, table: object, where: str) -> Param:
    if not isinstance(table, dict):
        raise AelabError(f"{where}: give a range {{ low = ..., high = ... }} or {{ choices = [...] }}, got {table!r}")
    extra = sorted(set(table) - {"low", "high", "log", "step", "choices"})
    if extra:
        raise AelabError(f"{where}: unknown key '{extra[0]}'; valid keys: choices, high, log, low, step")
    if "choices" in table:
        choices = table["choices"]
        if set(table) != {"choices"} or not isinstance(choices, list) or not choices:
            raise AelabError(f"{where}: choices is a non-empty list, alone (no low, high, log or step)")
        return Param(key, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices))
    if "low" not in table or "high" not in table:
        raise AelabError(f"{where}: a range needs low and high")
    low, high = table["low"], table["high"]
    for name, v in (("low", low), ("high", high), ("step", table.get("step", 1))):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise AelabError(f"{where}: {name} must be a number, got {v!r}")
    if not low < high:
        raise AelabError(f"{where}: low must be below high, got {low!r} and {high!r}")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise AelabError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise AelabError(f"{where}: a log scale needs low > 0, got {low!r}")
    if log and "step" in table:
        raise AelabError(f"{where}: a log scale takes no step")
    return Param(key, low, high, log, table.get("step"))


def parse(table: object, where: str) -> Search:
    """The [search] table of the study at `where`, checked (the metrics against report.METRICS)."""
    from aelab.reporting.report import METRICS
    if not isinstance(table, dict):
        raise AelabError(f"{where}: search must be a table ([search])")
    extra = sorted(set(table) - SEARCH_KEYS)
    if extra:
        raise AelabError(f"{where}: search: unknown key '{extra[0]}'; valid keys: {', '.join(sorted(SEARCH_KEYS))}")
    space = table.get("space", {})
    if not isinstance(space, dict) or not space:
        raise AelabError(f"{where}: search.space must name at least one setting, e.g. \"train.lr\" = {{ low = 1e-4, "
                         "high = 1e-2, log = true }")
    params = tuple(_param(k, v, f"{where}: search.space.{k}") for k, v in space.items())
    objectives = table.get("objectives")
    if not isinstance(objectives, dict) or not objectives:
        raise AelabError(f"{where}: search.objectives must map metrics to \"minimize\" or \"maximize\", "
                         "e.g. { neg_elbo = \"minimize\" }")
    for metric, direction in objectives.items():
        if metric not in METRICS:
            raise AelabError(f"{where}: search.objectives: unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
        if direction not in DIRECTIONS:
            raise AelabError(f"{where}: search.objectives.{metric} must be \"minimize\" or \"maximize\", got {direction!r}")
    s = Search(params, tuple(objectives.items()),
               trials=coerce("search.trials", table.get("trials", 20), int, where),
               minutes=coerce("search.minutes", table.get("minutes", 0.0), float, where),
               sampler=coerce("search.sampler", table.get("sampler", "tpe"), str, where),
               pruner=coerce("search.pruner", table.get("pruner", "median" if len(objectives) == 1 else "none"), str,
                             where),
               seed=coerce("search.seed", table.get("seed", 0), int, where))
    if s.trials < 1 or s.minutes < 0:
        raise AelabError(f"{where}: search.trials must be at least 1 and search.minutes at least 0")
    if s.sampler not in SAMPLERS:
        raise AelabError(f"{where}: search.sampler must be one of {', '.join(SAMPLERS)}, got {s.sampler!r}")
    if s.pruner not in PRUNERS:
        raise AelabError(f"{where}: search.pruner must be one of {', '.join(PRUNERS)}, got {s.pruner!r}")
    if s.pruner != "none" and len(objectives) > 1:
        raise AelabError(f"{where}: search.pruner: Optuna prunes searches of one objective only; "
                         "set pruner = \"none\" for several")
    return s


def check(search: Search, base: RunConfig, where: str) -> None:
    """Fail now, not at trial 7, where a value of the space makes no valid config: the ends
    of each range and every choice, each with the other settings at their first value."""
    from aelab import registry
    ends = {p.key: [config.toml_value(c) for c in p.choices] if p.choices else [p.low, p.high] for p in search.space}
    for p in search.space:
        for v in ends[p.key]:  # this value, the others at their first
            sets = [q.override(v if q is p else ends[q.key][0]) for q in search.space]
            try:
                registry.check(config.with_overrides(base, sets))
            except AelabError as e:
                raise AelabError(f"{where}: search.space.{p.key} = {v}: {e}") from None


def trial_config(search: Search, base: RunConfig, params: dict) -> RunConfig:
    return config.with_overrides(base, search.overrides(params))
