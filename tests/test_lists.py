"""Lists kept in prose agree with the code they describe: the package map (docs/index.md and
aelab/__init__.py) with the modules on disk and the layers test's order, and the names of the
parts (README, docs/configuration.md) with PARTS. A list that drifts fails here."""

import re
from pathlib import Path

import pytest

import aelab
from aelab.parts.catalog import PARTS
from test_layers import MODULES, ORDER, SRC, module_name, role

ROOT = Path(__file__).resolve().parents[1]


def _map_rows() -> dict[str, str]:
    """docs/index.md's package map: each row's roles cell -> its modules cell."""
    text = (ROOT / "docs" / "index.md").read_text()
    section = text[text.index("## The package"):]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return {roles.strip(): modules.strip() for roles, modules in rows}


def test_the_package_map_has_a_row_for_each_role_in_the_layers_order():
    rows = _map_rows()
    named = [re.findall(r"`([a-z_]+)/?`", cell) for cell in rows]
    assert named == [list(roles) for roles in ORDER]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_the_package_map_names_every_module(path):
    cells = dict(zip([tuple(re.findall(r"`([a-z_]+)/?`", c)) for c in _map_rows()], _map_rows().values()))
    cell = next(modules for roles, modules in cells.items() if role(module_name(path)) in roles)
    assert f"`{path.name}`" in cell, f"docs/index.md's package map lacks {path.relative_to(SRC)}"


def test_the_package_docstring_names_every_role():
    listed = [line.split()[0].rstrip(",") for line in aelab.__doc__.splitlines() if line.startswith("    ")]
    words = {w.strip(",;") for line in aelab.__doc__.splitlines() if line.startswith("    ") for w in line.split()[:4]}
    for roles in ORDER:
        assert all(r in words for r in roles), (roles, listed)


def test_the_part_names_in_the_readme_and_the_configuration_page_are_those_of_parts():
    readme = " ".join((ROOT / "README.md").read_text().split())
    table = (ROOT / "docs" / "configuration.md").read_text()
    for slot, names in PARTS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `model.{slot}` |"))
        assert set(re.findall(r"`([a-z_]+)`", row.split("|")[2])) == set(names), slot
        if slot in ("network", "latent", "prior", "likelihood", "objective"):
            said = re.search(rf"{slot} \(([^)]*)\)", readme).group(1)
            assert set(re.findall(r"`([a-z_]+)`", said)) == set(names), slot


@pytest.mark.parametrize("path", sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "experiments").glob("*.py")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_benchmark_or_experiment_imports_a_private_name(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aelab"):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports {private} from {node.module}"
