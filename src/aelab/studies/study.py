"""Studies: a set of runs that answer one question, described in one TOML file.

    title = "AE, VAE and CVAE on MNIST"
    question = "What does each objective buy?"
    config = "vae_mnist.toml"            # the base config: beside the study file, or a packaged one
    set = ["data.val_size=5000"]         # overrides for every run
    nll_k = 100                          # importance samples per test image for nll_is

    [variants.ae]                        # named variants (optional) ...
    set = ["model.latent.name=point"]
    published = { neg_elbo = 99.0 }      # a paper's number for this run, shown beside its own (optional;
                                         # `epoch = N`: the passes the paper trained for)
    [variants.vae]

    [grid]                               # ... crossed with a grid of values (optional)
    "train.lr" = [1e-3, 1e-2]

    [figures]                            # settings of the code-space figures (optional)
    pull = 0.25                          # delta in delta * Gaussian sample + (1 - delta) * real code
    fit_codes = 256                      # training codes the Gaussian is fitted to
    noise_levels = [0, 0.1, 0.5]         # noise sd on codes, relative to their RMS

    [report]                             # the report (optional)
    lang = "zh"                          # its language: en (the default) or zh; --lang overrides it

    [search]                             # `aelab tune`: a search over settings (search.py); then
    [search.space]                       # the study has no variants or grid

Every run is the base config with the study's overrides, then its variant's, then its grid
point's. A run's name is its variant's name joined to the grid values (`vae-lr=0.01`).
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aelab import config, language, registry, shipped
from aelab.config import RunConfig
from aelab.errors import AelabError
from aelab.language import Language
from aelab.settings import coerce, from_table, value_text
from aelab.reporting.figure_data import FigureOptions
from aelab.studies.search import Search, check, parse

STUDY_DIR = shipped.FOLDERS["study"]  # the shipped studies (also `studies/` in the repository)
STUDY_KEYS = {"title", "question", "config", "set", "nll_k", "variants", "grid", "figures", "report", "search"}
REPORT_KEYS = {"lang"}
VARIANT_KEYS = {"config", "set", "published"}


@dataclass(frozen=True)
class Run:
    name: str
    config: RunConfig
    varied: dict  # the settings that make this run differ from the base: key -> value
    source: Path = Path()  # the config file it starts from ...
    sets: tuple[str, ...] = ()  # ... and the overrides that make it: config.load(source, sets) == config
    published: tuple[tuple[str, float], ...] = ()  # (metric, a paper's number for this run), from the variant


@dataclass(frozen=True)
class Study:
    path: Path
    title: str
    question: str
    nll_k: int
    runs: tuple[Run, ...]
    figures: FigureOptions = FigureOptions()
    lang: Language = language.get("en")  # the report's
    search: Search | None = None  # `aelab tune`'s [search] (search.py); its one run is the base of every trial


def find_config(name: str, beside: Path) -> Path:
    """A config file named in a study: relative to the study file, else a packaged config."""
    if (beside / name).is_file():
        return beside / name
    try:
        return shipped.find("config", name)
    except AelabError:
        raise AelabError(f"{beside}: config {name!r} not found beside the study nor among the packaged configs "
                         f"({', '.join(shipped.names('config'))})") from None


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AelabError(f"{where} must be a list of \"key=value\" strings, got {value!r}")
    return value


def _unknown(table: dict, valid: set[str], where: str) -> None:
    extra = sorted(set(table) - valid)
    if extra:
        raise AelabError(f"{where}: unknown key '{extra[0]}'; valid keys: {', '.join(sorted(valid))}")


def find(path: str | Path) -> Path:
    """A study file: the path as given, else a shipped study of that name (`latent_size`,
    `latent_size.toml` or `studies/latent_size.toml` from anywhere)."""
    return shipped.find("study", path)


def shipped_studies() -> list[str]:
    """The names of the shipped studies."""
    return shipped.names("study")


def load(path: str | Path, sets: tuple[str, ...] | list[str] = ()) -> Study:
    """The study at `path`; `sets` (`aelab study --set`) override every run's config last."""
    path = find(path)
    try:
        tree = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AelabError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AelabError(f"{path}: cannot read study: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise AelabError(f"{path}: not valid TOML: {e}") from None
    _unknown(tree, STUDY_KEYS, str(path))
    for key in ("title", "question", "config"):
        if not isinstance(tree.get(key, ""), str):
            raise AelabError(f"{path}: {key} must be a string")
    nll_k = coerce("nll_k", tree.get("nll_k", 100), int, str(path))
    if nll_k < 1:
        raise AelabError(f"{path}: nll_k must be at least 1, got {nll_k!r}")
    common = _strings(tree.get("set", []), f"{path}: set")

    variants = tree.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise AelabError(f"{path}: variants must be tables, e.g. [variants.vae]")
    named = []
    for name, v in variants.items():
        _unknown(v, VARIANT_KEYS, f"{path}: variants.{name}")
        named.append((name, v.get("config", tree.get("config", "")), _strings(v.get("set", []), f"{path}: variants.{name}.set"),
                      _published(v.get("published", {}), f"{path}: variants.{name}.published")))
    if not named:
        named = [("", tree.get("config", ""), [], ())]

    grid = tree.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise AelabError(f"{path}: grid must map keys to non-empty lists of values")
    points = list(itertools.product(*grid.values()))
    if "search" in tree and (variants or grid):
        raise AelabError(f"{path}: a study with [search] searches one config: it takes no variants or grid")

    runs = []
    for (vname, cfg_name, vset, published), point in itertools.product(named, points):
        if not cfg_name:
            raise AelabError(f"{path}: no config: give `config = \"NAME.toml\"` (at the top or in each variant)")
        where = find_config(cfg_name, path.parent)
        grid_set = [f"{k}={config.toml_value(v)}" for k, v in zip(grid, point)] + list(sets)
        try:
            cfg = config.load(where, common + vset + grid_set)
            registry.check(cfg)
        except AelabError as e:  # name the study (a grid key, a variant's set) as well as the key
            raise AelabError(f"{path}: {e}") from None
        parts = [vname] if vname else []
        parts += [f"{config.short_key(k)}={value_text(v)}" for k, v in zip(grid, point)]
        name = "-".join(parts) or where.stem
        varied = dict(config.parse_override(s) for s in vset)
        varied.update(dict(zip(grid, point)))
        runs.append(Run(name, cfg, varied, where, tuple(common + vset + grid_set), published))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise AelabError(f"{path}: two runs would share the name {next(n for n in names if names.count(n) > 1)!r}")
    search = None
    if "search" in tree:
        search = parse(tree["search"], str(path))
        check(search, runs[0].config, str(path))
    return Study(path, tree.get("title", path.stem), tree.get("question", ""), nll_k, tuple(runs),
                 _figure_options(tree.get("figures", {}), path), _report_language(tree.get("report", {}), path), search)


def _published(table: object, where: str) -> tuple[tuple[str, float], ...]:
    """A variant's published numbers: metric names of the report (report.METRICS) -> numbers,
    and `epoch`, the passes the paper trained for."""
    from aelab.reporting.report import METRICS
    if not isinstance(table, dict):
        raise AelabError(f"{where} must be a table of metric = number, e.g. {{ nll_is = 86.76, epoch = 3280 }}")
    for key, value in table.items():
        if key not in METRICS and key != "epoch":
            raise AelabError(f"{where}: unknown metric {key!r}; metrics: epoch, {', '.join(METRICS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AelabError(f"{where}.{key} must be a number, got {value!r}")
    return tuple((k, float(v)) for k, v in table.items())


def _report_language(table: object, path: Path) -> Language:
    """The [report] table's language."""
    if not isinstance(table, dict):
        raise AelabError(f"{path}: report must be a table, e.g. [report] lang = \"zh\"")
    _unknown(table, REPORT_KEYS, f"{path}: report")
    try:
        return language.get(table.get("lang", "en"))
    except AelabError as e:
        raise AelabError(f"{path}: report.lang: {e}") from None


def _figure_options(table: object, path: Path) -> FigureOptions:
    """The [figures] table, checked as a config's keys are (FigureOptions' fields and ranges)."""
    return from_table(FigureOptions, table, str(path), "figures")
