"""The house's shape: imports run one way, down the roles of aelab/__init__.py; no folder
past about 15 modules; nothing heavy is loaded by `import aelab`; no dated or measured figure
in the source."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aelab"

# Highest first; a module may import from its own role and from any role below it.
ORDER = [("cli", "bench"), ("checking",), ("explore",), ("studies",), ("reporting",), ("evaluation", "training"), ("runs",), ("registry",),
         ("hardware",), ("config", "userparts"), ("course",), ("parts",), ("data",), ("settings",),
         ("files", "errors", "language", "shipped", "usercode")]
RANK = {role: i for i, roles in enumerate(ORDER) for role in roles}


def role(module: str) -> str | None:
    """'aelab.training.train' -> 'training'; 'aelab.cli' -> 'cli'; 'aelab' -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "aelab" else None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every aelab module `path` imports (at the top, in functions, under TYPE_CHECKING)."""
    here = module_name(path)
    return imports_in(path.read_text(), here if path.name == "__init__.py" else here.rpartition(".")[0])


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("aelab")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base == "aelab":  # from aelab import config, training
                found += [(node.lineno, f"aelab.{a.name}") for a in node.names]
            elif base.startswith("aelab."):
                found.append((node.lineno, base))
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_every_module_has_a_role():
    assert {role(module_name(p)) for p in MODULES} <= set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_down_the_roles(path):
    mine = role(module_name(path))
    upward = [f"line {line}: {target}" for line, target in imports(path)
              if role(target) is not None and role(target) in RANK and RANK[role(target)] < RANK[mine]]
    assert not upward, f"{path.relative_to(SRC)} ({mine}) imports from above its role: {upward}"


def test_the_checker_sees_an_upward_import():
    """The test above can fail: a parts module importing the registry and training is caught."""
    found = imports_in("from aelab import registry\nfrom ..training.train import fit\nfrom . import latents\n", "aelab.parts")
    assert [role(t) for _, t in found] == ["registry", "training", "parts"]
    assert [RANK[role(t)] < RANK["parts"] for _, t in found] == [True, True, False]


def test_no_folder_is_past_fifteen_modules():
    for folder in [SRC, *(p for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists())]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 15, f"{folder.name}: {len(modules)} modules"


def test_import_aelab_loads_nothing_heavy():
    code = ("import sys, aelab; heavy = [m for m in ('matplotlib', 'torch', 'numpy', 'aelab.config') if m in sys.modules]; "
            "assert not heavy, heavy; from aelab import config, registry, train, evaluate, RunDir; "
            "assert 'matplotlib' not in sys.modules, 'the training and evaluation modules load matplotlib'")
    subprocess.run([sys.executable, "-c", code], check=True)


# A date (2026-11-25) or a measured figure in prose ("0.99 of the samples", "3 min 35 s",
# "27.93 dB", "measured ... 0.68"): code explains, docs/experiments records.
DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")
MEASURED = re.compile(r"\bmeasured\b[^.]*\d|\d+\.\d+\s*(dB|nats|s|ms)\b|\d+ min \d+ s\b|\b0\.\d+ of the (samples|images)\b")


def string_literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_dates_or_measurements_in_source(path):
    text = path.read_text()
    comments = [(i + 1, line) for i, line in enumerate(text.splitlines()) if "#" in line]
    found = [(n, s[:80]) for n, s in [*string_literals(path), *comments] if DATE.search(s) or MEASURED.search(s)]
    assert not found, f"{path.relative_to(SRC)}: {found}"


def test_the_pattern_catches_what_it_is_for():
    assert DATE.search("s = 20 (measured 2026-11-25)")
    assert MEASURED.search("Together: 0.99 of the samples are the digit asked for")
    assert MEASURED.search("measured: one training step, 0.46 s in float32")
    assert MEASURED.search("PSNR 27.93 dB")
    assert not MEASURED.search("KL = 0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1)")
    assert not MEASURED.search("PSNR in dB (capped at 100 dB)")


PEERS = ("evaluation", "training")  # one rank, and neither imports the other: what both need is below them


@pytest.mark.parametrize("path", [p for p in MODULES if role(module_name(p)) in PEERS], ids=lambda p: module_name(p))
def test_evaluation_and_training_are_peers(path):
    here = role(module_name(path))
    other = next(r for r in PEERS if r != here)
    upward = [(line, m) for line, m in imports(path) if role(m) == other]
    assert not upward, f"{module_name(path)} imports {upward}"


def _module_graph() -> dict[str, set[str]]:
    """Every aelab module (package __init__ files included) -> the aelab modules it imports,
    at its top, in functions or under TYPE_CHECKING; `from aelab.parts import draws` is an
    import of aelab.parts.draws, `from aelab.parts import Prior` one of the package."""
    paths = {module_name(p): p for p in SRC.rglob("*.py") if p.name != "__main__.py"}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("aelab")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if base == "aelab" or base.startswith("aelab."):
                    found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert circles(_module_graph()) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Probing an object for what it can do (hasattr, getattr with a default, inspect.signature)
# is left to the code that imports a user's files and reads a student's modules; a part's
# capabilities are its slot's base (parts/slots.py). Elsewhere only these, none of them a part:
PROBES_ALLOWED = {
    "usercode.py": None, "userparts.py": None,  # importing a user's file, checking the class it gives
    "course/code.py": None,  # importing a student's model.py and main.py, reading their classes and Loss
    "checking/course.py": {"module"},  # which of the assignment's classes a student's module defines
    "course/student.py": {"self.net"},  # the student's own Model: whether it has an encoder and a decoder
    "cli.py": {"args"},  # argparse's namespace: options only some commands have
    "evaluation/compiled.py": {"torch"}, "hardware.py": {"torch.backends"},  # what this torch build has
}


def probes(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args:
            f = ast.unparse(node.func)
            if f in ("hasattr", "inspect.signature", "signature") or (f == "getattr" and len(node.args) == 3):
                found.append((node.lineno, f"{f}({ast.unparse(node.args[0])}, ...)"))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_part_is_probed_for_what_it_can_do(path):
    rel = str(path.relative_to(SRC))
    allowed = PROBES_ALLOWED.get(rel, set())
    if rel in PROBES_ALLOWED and allowed is None:
        return
    bad = [(line, text) for line, text in probes(path) if text.split("(", 1)[1].split(",")[0] not in allowed]
    assert not bad, f"{rel}: {bad}"


def test_the_probe_finder_finds_them(tmp_path):
    import textwrap
    source = textwrap.dedent('''
        if hasattr(model.prior, "bind"): pass
        x = getattr(latent, "prior_dim", 3)
        y = getattr(latent, "prior_dim")
        inspect.signature(m.latent.build)
    ''')
    path = tmp_path / "probe_example.py"
    path.write_text(source)
    assert [t for _, t in probes(path)] == ["hasattr(model.prior, ...)", "getattr(latent, ...)",
                                             "inspect.signature(m.latent.build, ...)"]


def test_no_part_name_is_tested_outside_its_own_module():
    """`model.prior.name == "conditional"` outside priors.py: a part chosen by its name."""
    from aelab.parts.catalog import PARTS

    home = {name: sys.modules[cls.__module__].__file__ for table in PARTS.values() for name, cls in table.items()}
    bad = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                names = [s.value for s in sides if isinstance(s, ast.Constant) and s.value in home]
                names += [e.value for s in sides if isinstance(s, (ast.Tuple, ast.List, ast.Set))
                          for e in s.elts if isinstance(e, ast.Constant) and e.value in home]
                if any(ast.unparse(s).endswith(".name") for s in sides):
                    bad += [f"{path.relative_to(SRC)}:{node.lineno} {n!r}" for n in names if Path(home[n]) != path]
    assert not bad, bad


def parameters(path: Path) -> list[tuple[int, str, int]]:
    """Each function of `path` with its parameter count (keyword-only ones counted; self and cls not)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            found.append((node.lineno, node.name, len(names) - (names[:1] in (["self"], ["cls"]))))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_function_takes_more_than_seven_parameters(path):
    """Past seven, a function's parameters are a context object waiting to be named."""
    long = [(line, name, n) for line, name, n in parameters(path) if n > 7]
    assert not long, f"{path.relative_to(SRC)}: {long}"
