"""A user's own parts: settings classes from outside the package, named in a config.

    [model.prior]
    name = "mixture_prior.py:MixturePrior"   # a file (relative to the config's folder) and a class
    components = 10                          # a field of that class, checked like a built-in's

    [model.network]
    name = "mylab.nets:ResNetNetworks"       # or an importable module and a class

The class is held to the built-ins' protocol (parts/slots.py, docs/own-model.md): a frozen
dataclass subclassing its slot's settings base (`PriorSettings` for model.prior, ...), typed
fields with defaults (ranges with `bounded` / `choice`), `build(...)` and optionally `check`,
`describe` and `theory`. Once loaded, the class's `name` is the reference the resolved config
records: an absolute file path (so a run directory's config imports it from anywhere) or the
module path as given. Importing it is usercode.py's.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from aelab import usercode
from aelab.errors import AelabError
from aelab.parts.slots import REQUIRED, SETTINGS
from aelab.settings import SETTING_TYPES, PartSettings
from aelab.usercode import Source, is_reference, sha256, sources

__all__ = ["changes", "is_reference", "record", "resolve", "slot_of"]


def resolve(slot: str, reference: str, folder: Path | None = None) -> type[PartSettings]:
    """The settings class a reference names, checked against the protocol of `slot`.
    A relative file path is taken from `folder` (the config file's), else the working folder."""
    cls, where, canonical = usercode.find(reference, folder, f"model.{slot}.name")
    _check_class(cls, slot, where)
    cls.name = canonical  # how the resolved config names it
    return cls


def slot_of(reference: str, folder: Path | None = None) -> str:
    """The slot the class a reference names is for (what `aelab check` builds it as)."""
    cls, where, _ = usercode.find(reference, folder, "check")
    if not isinstance(cls, type) or not issubclass(cls, PartSettings):
        _check_class(cls, "", where)
    if not cls.slot:
        raise AelabError(f"{where}: is for no slot: subclass one of aelab.parts." + ", ".join(c.__name__ for c in SETTINGS.values()))
    return cls.slot


def _check_class(cls: object, slot: str, where: str) -> None:
    """The protocol of a part's settings class, each rule broken named in one line."""
    if not isinstance(cls, type) or not issubclass(cls, PartSettings):
        base = SETTINGS[slot].__name__ if slot in SETTINGS else "its slot's settings base"
        raise AelabError(f"{where}: is not a part settings class (a frozen dataclass subclassing aelab.parts.{base})")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise AelabError(f"{where}: must be a frozen dataclass: put @dataclass(frozen=True) above it")
    if cls.slot != slot:
        given = f"is for model.{cls.slot}" if cls.slot else "sets no slot"
        raise AelabError(f"{where}: {given}, not model.{slot} (subclass aelab.parts.{SETTINGS[slot].__name__})")
    if not issubclass(cls, SETTINGS[slot]):
        raise AelabError(f"{where}: does not subclass aelab.parts.{SETTINGS[slot].__name__}, the protocol of "
                         f"model.{slot} (see docs/own-model.md)")
    if cls.__abstractmethods__:
        raise AelabError(f"{where}: has no {' or '.join(sorted(cls.__abstractmethods__))} method "
                         f"(what it builds for model.{slot}: see docs/own-model.md)")
    missing = [f"{k} ({why})" for k, why in REQUIRED.get(slot, {}).items() if not hasattr(cls, k)]
    if missing:
        raise AelabError(f"{where}: a {slot} part must say " + "; ".join(missing))
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:
        raise AelabError(f"{where}: its type hints do not resolve: {usercode.one_line(e)}") from None
    for f in dataclasses.fields(cls):
        if hints[f.name] not in SETTING_TYPES:
            raise AelabError(f"{where}: setting {f.name!r} has type {hints[f.name]!r}; a setting is one of "
                             "bool, int, float, str, tuple[int, ...], tuple[float, ...]")
    try:
        cls()
    except Exception as e:
        raise AelabError(f"{where}: cannot be made from its defaults (every setting needs one): {usercode.one_line(e)}") from None


def record(model) -> list[dict]:
    """What a run keeps of the user's parts of `model` (a ModelConfig): for each, its slot,
    import name and class, and every file it ran with its sha256; a student's skeleton
    ([model.skeleton]) as one more, its model.py and the file of its Loss."""
    kept = [{"slot": p.slot, "name": p.name, "class": type(p).__name__,
             "files": [dataclasses.asdict(s) for s in sources(type(p))]}
            for p in model.parts() if is_reference(p.name)]
    if model.skeleton.used:
        files = [f for f in (model.skeleton.file, model.skeleton.loss_file()) if f and Path(f).is_file()]
        kept.append({"slot": "skeleton", "name": model.skeleton.file, "class": model.skeleton.type,
                     "files": [dataclasses.asdict(Source(str(f), sha256(f))) for f in files]})
    return kept


def changes(recorded: list[dict], model) -> list[str]:
    """One line per user part of `model` saying which file it is imported from, and one
    warning per file whose sha256 differs from `recorded` (a run's meta.json) or is gone."""
    lines = []
    files = {f["path"]: f["sha256"] for r in recorded for f in r.get("files", [])}
    for part in model.parts():
        if not is_reference(part.name):
            continue
        found = sources(type(part))
        where = found[0].path if found else part.name.rpartition(":")[0]
        lines.append(f"model.{part.slot}: importing {type(part).__name__} from {where}")
        for s in found:
            if s.path in files and files[s.path] != s.sha256:
                lines.append(f"warning: {s.path} has changed since the run was made "
                             f"(sha256 {files[s.path][:12]} then, {s.sha256[:12]} now); the run's copy is in its code/ folder")
    skeleton = next((r for r in recorded if r.get("slot") == "skeleton"), None)
    for f in (skeleton or {}).get("files", []):
        now = sha256(f["path"]) if Path(f["path"]).is_file() else "gone"
        if now != f["sha256"]:
            lines.append(f"warning: {f['path']} has changed since the run was made (sha256 {f['sha256'][:12]} then, "
                         f"{now[:12]} now); the run's copy is in its code/ folder")
    return lines

