"""The translations' message catalog, extracted from the source by Babel.

    python tools/messages.py            locale/aelab.pot from the source, merged into every .po
    python tools/messages.py --check    exit 1 where a .po lacks a message or translates one badly

Messages are the first argument of every `N_(...)` in src/aelab (aelab/language.py) and the
title and question of every shipped study and of every study among the examples. A message new to a .po arrives untranslated;
translate it there (the test suite fails until every message is). `make messages` runs this.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "aelab"
LOCALE = SRC / "locale"
TEMPLATE = LOCALE / "aelab.pot"
KEYWORDS = {"N_": None}  # N_(message, **values): the message is the first argument


def _studies(fileobj, keywords, comment_tags, options):
    """Babel extractor of a study file's title and question."""
    tree = tomllib.loads(fileobj.read().decode())
    for key in ("title", "question"):
        if tree.get(key):
            yield 1, None, tree[key], [f"the {key} of a shipped study"]


def template() -> Catalog:
    """Every message of the source, with where it is used."""
    catalog = Catalog(project="aelab", domain="aelab", charset="utf-8")
    for folder, methods in ((SRC, [("**.py", "python"), ("studies/shipped/*.toml", _studies)]),
                            (ROOT / "examples", [("**.toml", _studies)])):
        found = extract_from_dir(str(folder), methods, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",),
                                 strip_comment_tags=True)
        for filename, lineno, message, comments, context in found:
            where = (folder / filename).relative_to(ROOT).as_posix()
            catalog.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return catalog


def languages() -> list[Path]:
    return sorted(LOCALE.glob("*/LC_MESSAGES/aelab.po"))


def read(po: Path) -> Catalog:
    with po.open("rb") as f:
        return read_po(f, locale=po.parts[-3])


def problems(pot: Catalog, po: Path) -> list[str]:
    """What is wrong with one language's catalog against the source's messages."""
    from aelab.language import fields

    catalog, found = read(po), []
    for message in pot:
        if not message.id:
            continue
        said = catalog.get(message.id)
        if said is None or not said.string:
            found.append(f"{po}: untranslated: {message.id!r}")
        elif said.fuzzy:
            found.append(f"{po}: fuzzy (check it, then drop the flag): {message.id!r}")
        elif fields(said.string) != fields(message.id):
            found.append(f"{po}: {said.string!r} formats {sorted(fields(said.string))}, the English "
                         f"{sorted(fields(message.id))}")
    return found


def update() -> None:
    pot = template()
    with TEMPLATE.open("wb") as f:
        write_po(f, pot, width=100, omit_header=False, sort_output=False)
    for po in languages():
        catalog = read(po)
        catalog.update(pot, update_header_comment=False)
        with po.open("wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True)
        print(f"{po.relative_to(ROOT)}: {len(catalog)} messages")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check the .po files")
    if not p.parse_args().check:
        update()
    found = [line for po in languages() for line in problems(template(), po)]
    print("\n".join(found) or "every message translated")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
