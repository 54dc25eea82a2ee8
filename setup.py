"""The build step pyproject.toml cannot say: the translations' .po files compiled to the .mo
files gettext reads (src/aelab/locale/LANG/LC_MESSAGES/aelab.mo), by Babel, before the
package's files are collected. It runs for `pip install .`, a wheel and `pip install -e .`."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE = Path(__file__).parent / "src" / "aelab" / "locale"


def compile_catalogs() -> list[Path]:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parts[-3])
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo)
    return written


class BuildWithCatalogs(build_py):
    def run(self):
        for mo in compile_catalogs():
            print(f"compiled {mo.relative_to(LOCALE.parent.parent.parent)}")
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogs})
