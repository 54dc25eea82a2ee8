"""Fonts that letter a figure in the report's language, found on this machine at run time.

matplotlib's own fonts (DejaVu) have no Chinese characters: a Chinese title drawn with them
comes out as boxes. A language in SCRIPTS needs a font of its script; `lettering` finds one
among the fonts matplotlib knows and the system's font files (Debian's fonts-noto-cjk or
fonts-wqy-microhei, which `make setup` installs where it can; a font installed after
matplotlib built its font cache is found too), checks that it has the characters, and puts
it first in the family list. Where none is found, the figures are lettered in English and
the report says so in one line (`missing`).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from aelab import language
from aelab.language import N_, Language

# code -> (a character the font must have, families in order of preference, words in the
# names of font files that may have them)
SCRIPTS = {
    "zh": ("自", ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei",
                  "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "SimHei",
                  "Heiti SC", "Droid Sans Fallback", "AR PL UMing CN"),
           ("cjk", "wqy", "sourcehan", "simhei", "msyh", "pingfang", "hiragino", "droidsansfallback", "uming",
            "ukai")),
}


def _has(path: str, char: str) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        return FT2Font(path).get_char_index(ord(char)) != 0
    except (OSError, RuntimeError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def family(code: str) -> str | None:
    """The family of a font that has language `code`'s characters (None: none is needed, or
    none is installed). Fonts matplotlib had not seen are added to its font manager."""
    if code not in SCRIPTS:
        return None
    from matplotlib import font_manager

    char, preferred, words = SCRIPTS[code]
    known = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    if not any(name in known for name in preferred):
        for path in font_manager.findSystemFonts():
            if any(w in Path(path).name.lower().replace("-", "").replace("_", "") for w in words) and _has(path, char):
                font_manager.fontManager.addfont(path)
        known = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    return next((name for name in preferred if name in known and _has(known[name], char)), None)


def lettering(lang: Language) -> tuple[Language, dict]:
    """The language the figures are lettered in, and the matplotlib settings that letter them:
    `lang` with its script's font first (DejaVu after it, for the maths), or English where
    `lang` needs a font that this machine lacks."""
    if lang.code not in SCRIPTS:
        return lang, {}
    found = family(lang.code)
    if found is None:
        return language.get("en"), {}
    return lang, {"font.family": "sans-serif", "font.sans-serif": [found, "DejaVu Sans"]}


@contextlib.contextmanager
def lettered(lang: Language | None):
    """Draw figures inside the block in `lang`'s letters (default English): yields the Language
    their words are translated with (`lettering`), its font set for matplotlib meanwhile."""
    import matplotlib

    tr, settings = lettering(lang or language.get("en"))
    with matplotlib.rc_context(settings):
        yield tr


def missing(lang: Language) -> list[str]:
    """The report's one line where its figures could not be lettered in `lang`."""
    if lang.code not in SCRIPTS or family(lang.code) is not None:
        return []
    return [N_("The figures keep English labels: this machine has no font with {language} characters "
               "(on Debian: apt-get install fonts-noto-cjk).", language=lang.name)]
