"""A user's own parts: settings classes from outside the package, named in a config.

    [model.prior]
    name = "mixture_prior.py:MixturePrior"   # a file (relative to the config's folder) and a class
    components = 10                          # a field of that class, checked like a built-in's

    [model.network]
    name = "mylab.nets:ResNetNetworks"       # or an importable module and a class

The class is held to the built-ins' protocol (settings.py, docs/own-model.md): a frozen
dataclass subclassing `PartSettings` with `slot` set, typed fields with defaults (ranges with
`bounded` / `choice`), `build(...)` and optionally `check`, `describe` and `theory`. Once
loaded, the class's `name` is the reference the resolved config records: an absolute file path
(so a run directory's config imports it from anywhere) or the module path as given.

A file is imported under a module name of its own (`aelab_user.<stem>_<hash of its path>`),
once per process, with its folder first on `sys.path` while it runs, so that it may import
its neighbours at its top (`from model import VAE`). They are ordinary modules of the process:
a second folder's `model.py` is not imported in the same process (refused, in one line). The files it ran are its `sources`: the file and
every module it imported from beside it, each with its sha256, for the run's record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from aelab.errors import AelabError
from aelab.parts.settings import SETTING_TYPES, PartSettings

MODULE_PREFIX = "aelab_user"

# what a slot's settings class must say besides `build`, for the rest of aelab to read
REQUIRED = {
    "latent": {"stochastic": "whether codes are drawn (True) or the encoder's output itself (False)",
               "short": "the model's name it makes, e.g. 'VAE'"},
    "condition": {"prefix": "'C' for a conditioned model (CVAE), else ''"},
}


def is_reference(name: object) -> bool:
    """A part's name that names a class of the user's ('file.py:Class', 'pkg.mod:Class'):
    built-in names have no colon."""
    return isinstance(name, str) and ":" in name


@dataclass(frozen=True)
class Source:
    """A file of a user's part: where it is and what it held when it was imported."""

    path: str
    sha256: str


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve(slot: str, reference: str, folder: Path | None = None) -> type[PartSettings]:
    """The settings class a reference names, checked against the protocol of `slot`.
    A relative file path is taken from `folder` (the config file's), else the working folder."""
    cls, where, canonical = _find(reference, folder, f"model.{slot}.name")
    _check_class(cls, slot, where)
    cls.name = canonical  # how the resolved config names it
    return cls


def slot_of(reference: str, folder: Path | None = None) -> str:
    """The slot the class a reference names is for (what `aelab check` builds it as)."""
    cls, where, _ = _find(reference, folder, "check")
    if not isinstance(cls, type) or not issubclass(cls, PartSettings):
        _check_class(cls, "", where)
    if not cls.slot:
        raise AelabError(f"{where}: sets no slot (slot = 'network', 'latent', 'prior', ... in the class)")
    return cls.slot


def _find(reference: str, folder: Path | None, key: str):
    """(the class, where it is as errors name it, the reference as configs record it)."""
    target, _, class_name = reference.rpartition(":")
    if not target or not class_name.isidentifier():
        raise AelabError(f"{key}: {reference!r} is not 'path/to/file.py:Class' nor 'package.module:Class'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        path = (path if path.is_absolute() else (folder or Path.cwd()) / path).resolve()
        module, where, canonical = _load_file(path), str(path), f"{path}:{class_name}"
    else:
        module, where, canonical = _import(target), target, reference
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AelabError(f"{where}: has no class {class_name!r} ({key} = {reference!r})")
    return cls, f"{where}:{class_name}", canonical


def sources(cls: type) -> list[Source]:
    """The files a user's part ran: its module's file and the modules it imported from beside it."""
    module = sys.modules.get(cls.__module__)
    paths = getattr(module, "__aelab_sources__", None) or [getattr(module, "__file__", None)]
    return [Source(str(p), sha256(p)) for p in paths if p and Path(p).is_file()]


def rebuild(slot: str, reference: str, values: dict) -> PartSettings:
    """A user part's settings from its reference and values: how they cross into another
    process (a study's --jobs workers), which imports the part again by its reference."""
    return resolve(slot, reference)(**values)


def _module_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{MODULE_PREFIX}.{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def _load_file(path: Path):
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise AelabError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AelabError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # its neighbours, while it runs
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code failed: name the file and what it raised, one line
        del sys.modules[name]
        raise AelabError(f"{path}: raised on import: {_one_line(e)}") from None
    finally:
        sys.path.remove(str(path.parent))
    # `import model` / `from model import VAE` meant the neighbour, not another folder's model.py
    for n in sorted(u for u in _used(module) if "." not in u and u != name):
        other = getattr(sys.modules.get(n), "__file__", None)
        if (path.parent / f"{n}.py").is_file() and other and not _under(other, path.parent):
            del sys.modules[name]
            raise AelabError(f"{path}: imports {n!r}, which this process already imported from {other}, not its "
                             f"neighbour {path.parent / f'{n}.py'}; name the files apart, or use one process per folder")
    _record_sources(module, str(path), before)
    return module


def _import(target: str):
    before = set(sys.modules)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and target.startswith(e.name):
            raise AelabError(f"{target}: no such module (installed, or on PYTHONPATH?); "
                             "a file is named as 'path/to/file.py:Class'") from None
        raise AelabError(f"{target}: raised on import: {_one_line(e)}") from None
    except Exception as e:
        raise AelabError(f"{target}: raised on import: {_one_line(e)}") from None
    file = getattr(module, "__file__", None)
    if file and not hasattr(module, "__aelab_sources__"):
        _record_sources(module, file, before)
    return module


def _used(module) -> set[str]:
    """The names of the modules `module`'s globals come from (a module itself, or a class's or function's)."""
    found = {v.__name__ if isinstance(v, types.ModuleType) else getattr(v, "__module__", None) for v in vars(module).values()}
    return {n for n in found if isinstance(n, str)}


def _record_sources(module, file: str, before: set[str]) -> None:
    """`module.__aelab_sources__`: its file and every module beside it that it imported, while
    it ran (new since `before`) or earlier (named in its globals)."""
    names = (set(sys.modules) - before) | (_used(module) & set(sys.modules))
    beside = {sys.modules[n].__file__ for n in names if sys.modules[n] is not module
              and _under(getattr(sys.modules[n], "__file__", None), Path(file).parent)}
    module.__aelab_sources__ = [str(file), *sorted(beside)]


def _under(file: str | None, folder: Path) -> bool:
    return bool(file) and Path(file).resolve().parent == folder.resolve()


def _one_line(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} (line {e.lineno})"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def _check_class(cls: object, slot: str, where: str) -> None:
    """The protocol of a part's settings class, each rule broken named in one line."""
    if not isinstance(cls, type) or not issubclass(cls, PartSettings):
        raise AelabError(f"{where}: is not a part settings class (a frozen dataclass subclassing aelab.parts.PartSettings)")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise AelabError(f"{where}: must be a frozen dataclass: put @dataclass(frozen=True) above it")
    if cls.slot != slot:
        given = f"is for model.{cls.slot}" if cls.slot else "sets no slot"
        raise AelabError(f"{where}: {given}, not model.{slot} (set slot = {slot!r} in the class)")
    if not callable(getattr(cls, "build", None)):
        raise AelabError(f"{where}: has no build method (what it builds for model.{slot}: see docs/own-model.md)")
    missing = [f"{k} ({why})" for k, why in REQUIRED.get(slot, {}).items() if not hasattr(cls, k)]
    if missing:
        raise AelabError(f"{where}: a {slot} part must say " + "; ".join(missing))
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:
        raise AelabError(f"{where}: its type hints do not resolve: {_one_line(e)}") from None
    for f in dataclasses.fields(cls):
        if hints[f.name] not in SETTING_TYPES:
            raise AelabError(f"{where}: setting {f.name!r} has type {hints[f.name]!r}; a setting is one of "
                             "bool, int, float, str, tuple[int, ...], tuple[float, ...]")
    try:
        cls()
    except Exception as e:
        raise AelabError(f"{where}: cannot be made from its defaults (every setting needs one): {_one_line(e)}") from None


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
