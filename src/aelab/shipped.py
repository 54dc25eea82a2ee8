"""What aelab ships, found by name: the configs and the studies inside the package.

One resolver for both. A name is taken as a path where that file exists; otherwise its file
name is looked up among the shipped ones, with or without `.toml`, so that `vae_mnist`,
`vae_mnist.toml` and `configs/vae_mnist.toml` find the packaged config from any folder (after
`pip install`, where there is no `configs/` folder beside you).
"""

from __future__ import annotations

import re
from pathlib import Path

from aelab.errors import AelabError

PACKAGE = Path(__file__).parent
FOLDERS = {"config": PACKAGE / "configs", "study": PACKAGE / "studies" / "shipped"}
PLURAL = {"config": "configs", "study": "studies"}


def names(kind: str) -> list[str]:
    """The names of the shipped configs or studies."""
    return sorted(p.stem for p in FOLDERS[kind].glob("*.toml"))


def find(kind: str, name: str | Path) -> Path:
    """The file `name` names: the path as given, else the shipped `kind` of that name."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (FOLDERS[kind] / path.name, FOLDERS[kind] / f"{path.name}.toml"):
        if candidate.is_file():
            return candidate
    raise AelabError(f"{path}: no such {kind} file (shipped {PLURAL[kind]}: {', '.join(names(kind))})")


def summary(path: Path, width: int = 90) -> str:
    """A shipped file's opening comment, to the end of its first sentence (at most `width` characters)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    first = re.split(r"(?<!\bal)\.\s+(?=[A-Z`])", text)[0].rstrip(".")  # not at "et al. 2015"
    return first if len(first) <= width else first[:width - 1].rsplit(" ", 1)[0] + " ..."
