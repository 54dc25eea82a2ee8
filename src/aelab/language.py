"""The report's languages: English text that knows how to be translated, and a Language that
translates it from a gettext catalog.

Code writes its English with `N_` and names the values it formats in:

    N_("{epochs} epochs, batch {batch}", epochs=10, batch=128)

which is a `Text`: a str that reads as the English ("10 epochs, batch 128") wherever a str
does, and that keeps its message id and values, so that `Language("zh")(text)` looks the id up
in src/aelab/locale/zh/LC_MESSAGES/aelab.mo and formats the translation with the same values.
Formulas and numbers live in the values or pass through unchanged. `join` joins Texts and
keeps each piece translatable. A plain str (a run's name, a user's own theory) is never
translated: only a Text is.

The catalogs: `make messages` extracts every N_ message (Babel) into locale/aelab.pot and
merges it into each language's .po; the .po files are in the repository and are compiled to
.mo when the package is installed or built (setup.py).
"""

from __future__ import annotations

import functools
import gettext
import string
from pathlib import Path

from aelab.errors import AelabError

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "aelab"
LANGUAGES = {"en": "English", "zh": "简体中文 (Simplified Chinese)"}  # code -> name; en needs no catalog


class Text(str):
    """English text with its message id and the values formatted into it (see the module)."""

    template: str
    values: dict
    pieces: tuple = ()
    sep: str = ""

    def __new__(cls, template: str, /, **values):
        self = super().__new__(cls, template.format(**values) if values else template)
        self.template, self.values = template, values
        return self

    def __reduce__(self):
        return (_rebuild, (self.template, self.values, self.pieces, self.sep))


def _rebuild(template: str, values: dict, pieces: tuple, sep: str) -> Text:
    return join(sep, pieces) if pieces else Text(template, **values)


def N_(template: str, /, **values) -> Text:  # noqa: N802 (gettext's name for "translate later")
    """`template` with `values` formatted in, translatable later (the extraction keyword)."""
    return Text(template, **values)


def join(sep: str, pieces) -> Text:
    """The pieces joined by `sep`, each translated on its own (empty pieces dropped)."""
    pieces = tuple(p for p in pieces if p)
    text = Text(sep.join(pieces))
    text.pieces, text.sep = pieces, sep
    return text


def fields(template: str) -> set[str]:
    """The names a template formats in: '{n} of {total:d}' -> {'n', 'total'}."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class Language:
    """One of LANGUAGES, with its catalog; calling it translates a Text (module docstring)."""

    def __init__(self, code: str, catalog: gettext.NullTranslations):
        self.code, self.catalog = code, catalog

    def __call__(self, text: str) -> str:
        if not isinstance(text, Text):
            return text
        if text.pieces:
            return self(text.sep).join(self(p) for p in text.pieces)
        if not text.template:  # gettext's "" is the catalog's header
            return ""
        values = {k: self(v) if isinstance(v, Text) else v for k, v in text.values.items()}
        said = self.catalog.gettext(text.template)
        return said.format(**values) if values else said

    @property
    def name(self) -> str:
        return LANGUAGES[self.code]

    @property
    def english(self) -> bool:
        return self.code == "en"

    def __reduce__(self):  # into a study's worker processes by its code; each loads the catalog
        return (get, (self.code,))

    def __eq__(self, other) -> bool:
        return isinstance(other, Language) and other.code == self.code

    def __hash__(self) -> int:
        return hash(self.code)

    def __repr__(self) -> str:
        return f"Language({self.code!r})"


def catalog_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.mo"


def get(code: str = "en") -> Language:
    """The Language of a code in LANGUAGES; an unknown code or a missing catalog is an error."""
    if not isinstance(code, str) or code not in LANGUAGES:
        raise AelabError(f"unknown language {code!r}; known: " + ", ".join(f"{c} ({n})" for c, n in LANGUAGES.items()))
    return _load(code)


@functools.lru_cache(maxsize=None)
def _load(code: str) -> Language:
    if code == "en":
        return Language(code, gettext.NullTranslations())
    path = catalog_path(code)
    if not path.is_file():
        raise AelabError(f"{path}: the {LANGUAGES[code]} catalog is not compiled; reinstall aelab "
                         "(`make setup`, or `pip install -e .`), which compiles it from its .po file")
    with path.open("rb") as f:
        return Language(code, gettext.GNUTranslations(f))
