"""Settings: frozen, typed dataclasses whose fields carry their own ranges, and the base of
every model part's settings.

A part of the model (its network, latent, likelihood, objective, corruption, condition,
channel) is chosen by name in its own config table, `[model.objective] name = "iwae"`, and
configured by that name's settings class: `samples = 50`. The registry maps each name to
its settings class (parts.catalog.PARTS); the settings check themselves against the rest of the
model, describe themselves for reports, name the theory they rest on, and build the part.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import ClassVar

from aelab import usercode
from aelab.errors import AelabError


def bounded(default, *, at_least=None, above=None, at_most=None, needs: str | None = None):
    """A field with a range, checked where configs are loaded: value >= at_least, value > above,
    value <= at_most (for a list, each of its values). `needs`: the field of the same settings
    without which this one does nothing (the setting check moves that one too)."""
    return field(default=default, metadata={"at_least": at_least, "above": above, "at_most": at_most,
                                            "needs": needs})


def choice(default: str, table: dict):
    """A field naming one row of `table` (its keys are the valid values), checked where configs are loaded."""
    return field(default=default, metadata={"choices": table})


# the types a setting may have (`coerce` reads each)
SETTING_TYPES = (bool, int, float, str, tuple[int, ...], tuple[float, ...])


def coerce(key: str, value: object, tp: object, where: str) -> object:
    """Check `value` against the annotation `tp`; return it in the field's own type."""
    def bad(expected: str) -> AelabError:
        return AelabError(f"{where}: {key} must be {expected}, got {value!r}")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if typing.get_origin(tp) is tuple and typing.get_args(tp)[0] is float:  # tuple[float, ...]
        if not isinstance(value, (list, tuple)) or not value or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value
        ):
            raise bad("a non-empty list of finite numbers")
        return tuple(float(v) for v in value)
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
        ):
            raise bad("a list of positive integers")
        return tuple(value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def check_range(key: str, f: dataclasses.Field, value, where: str) -> None:
    """The field's own range or choices (`bounded`, `choice`), else nothing."""
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise AelabError(f"{where}: {key}: unknown {value!r}; choose from {', '.join(choices)}")
    low, above, high = f.metadata.get("at_least"), f.metadata.get("above"), f.metadata.get("at_most")
    for v in value if isinstance(value, tuple) else (value,):
        each = "each of " if isinstance(value, tuple) else ""
        if low is not None and v < low:
            raise AelabError(f"{where}: {each}{key} must be at least {low}, got {value!r}")
        if above is not None and v <= above:
            raise AelabError(f"{where}: {each}{key} must be greater than {above}, got {value!r}")
        if high is not None and v > high:
            raise AelabError(f"{where}: {each}{key} must be at most {high}, got {value!r}")


def from_table(cls, table: object, where: str, prefix: str):
    """A settings dataclass `cls` from a TOML table, each key checked as a config's are: unknown
    keys refused with the valid ones listed, each value against its field's type and range."""
    if not isinstance(table, dict):
        raise AelabError(f"{where}: {prefix} must be a table, e.g. [{prefix}]")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = typing.get_type_hints(cls)
    values = {}
    for name, value in table.items():
        key = f"{prefix}.{name}"
        if name not in fields:
            raise AelabError(f"{where}: unknown key '{key}'; valid keys: {', '.join(f'{prefix}.{k}' for k in fields)}")
        values[name] = coerce(key, value, types[name], where)
        check_range(key, fields[name], values[name], where)
    return cls(**values)


def value_text(value) -> str:
    """A setting as settings lines, run names and report tables show it: [512, 256] -> 512x256,
    1e-3 -> 0.001, true -> on, 'path/mine.py:MyPrior' -> MyPrior. The one formatter of setting values."""
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and ":" in value and value.rpartition(":")[2].isidentifier():
        return value.rpartition(":")[2]  # a user's part ('/home/me/mine.py:MyPrior'): its class
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class PartSettings:
    """The settings of one named part. Subclasses set `name` and `slot` and add typed fields
    (with `bounded` ranges where a value has one) and a `build` method."""

    name: ClassVar[str] = ""
    slot: ClassVar[str] = ""  # which part of the model: network, latent, objective, ...

    @property
    def title(self) -> str:
        """The part as reports name it: its name, or a user's part by its class."""
        return type(self).__name__ if ":" in self.name else self.name

    def __reduce_ex__(self, protocol):
        """A user's part (userparts.py) crosses into another process by its reference, which
        that process imports again; a built-in one as any dataclass does."""
        if ":" in self.name:
            values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
            return rebuild, (self.name, values)
        return super().__reduce_ex__(protocol)

    def check(self, model) -> None:
        """Rules that involve other parts of `model` (a ModelConfig); raise AelabError."""

    def changed(self) -> dict[str, object]:
        """The fields that differ from this part's defaults."""
        default = type(self)()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def changed_words(self, words: dict[str, str] | None = None) -> list[str]:
        """Each setting off its default, in the part's own `words` for it where given, else as
        'setting value' ('kl warmup epochs 2')."""
        words = words or {}
        return [words.get(k, f"{k.replace('_', ' ')} {value_text(v)}") for k, v in self.changed().items()]

    def describe(self) -> str:
        """A phrase for a report's settings line: the name and every setting off its default
        ('' for a part that is absent, such as no corruption). Parts may say it better, but
        must still say every setting that differs (the registry tests check)."""
        extra = ", ".join(self.changed_words())
        return f"{self.slot} {self.title}" + (f" ({extra})" if extra else "")

    def theory(self, model) -> list[tuple[str, list[str]]]:
        """The report's theory sections (heading, paragraphs) this part rests on, written from
        its own settings and those of the rest of `model` (a ModelConfig): the maths and its
        citation, never a measured number (those live in docs/experiments/)."""
        return []


def rebuild(reference: str, values: dict) -> PartSettings:
    """A user part's settings from its reference (as the resolved config recorded it, checked
    where it was first loaded) and values: how they cross into another process (a study's
    --jobs workers), which imports the part again."""
    cls, _, canonical = usercode.find(reference, None, "model")
    cls.name = canonical
    return cls(**values)
