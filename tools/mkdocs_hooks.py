"""MkDocs hooks: lists in the docs generated from the code at build time.

`<!-- generated: parts -->` in a page becomes the table of every part in PARTS, with its
settings and their defaults (aelab.parts.catalog.listing), so that the page lists what the
code has, a new part included, with no hand-kept copy to drift.
"""

from aelab.parts import catalog

MARKERS = {"<!-- generated: parts -->": catalog.listing}


def on_page_markdown(markdown, page, config, files):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
