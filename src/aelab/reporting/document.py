"""A report as a list of blocks, and its two renderings: one self-contained HTML file (PNGs
embedded, styles inline, no script, nothing fetched) and Markdown that links the same PNGs by
paths relative to the report's folder (so the folder zipped still shows them).

layout.py decides what the blocks are; this module only says how each one looks, and
`translate` puts every Text of the blocks into the report's language first.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = ""  # "sub", "caption", "failed", "yours"


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[str]]
    anchor: str = ""


@dataclass(frozen=True)
class Items:
    """A bullet list: (bold lead, text, code or '') per item."""
    items: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Picture:
    path: Path
    alt: str
    caption: str = ""  # under the picture; a lead word in bold before ': '


@dataclass(frozen=True)
class Pictures:
    """Pictures side by side, `columns` to a row; one alone keeps its own width (`wide`)."""
    pictures: list[Picture]
    columns: int = 2
    wide: bool = False


@dataclass(frozen=True)
class Folded:
    """A heading whose text is folded away until opened (HTML <details>; Markdown shows it)."""
    summary: str
    paragraphs: list[str] = field(default_factory=list)


Block = Heading | Para | Table | Items | Pictures | Folded

def translate(blocks: list[Block], tr: Callable[[str], str]) -> list[Block]:
    """The blocks with every string in them passed through `tr` (a Language: it translates a
    Text and leaves a plain str, such as a run's name or a number, as it is)."""
    def each(value):
        if isinstance(value, str):
            return tr(value)
        if isinstance(value, (list, tuple)):
            return type(value)(each(v) for v in value)
        if dataclasses.is_dataclass(value):
            return dataclasses.replace(value, **{f.name: each(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return value  # a path, a number

    return [each(b) for b in blocks]


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",sans-serif;margin:0 auto;max-width:1600px;padding:1.5em 2em;color:#222}
h1{margin-bottom:.1em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:13px;margin:.6em 0} th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left;font-weight:600;white-space:nowrap}
.wide-table{overflow-x:auto;max-width:100%}
.row{display:grid;gap:1em;align-items:start}
figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:.5em;background:#fff}
figure img{width:100%;height:auto;display:block} figure.wide{width:fit-content;max-width:100%}
figure.wide img{width:auto;max-width:100%} figcaption{font-size:13px;color:#444;margin-top:.3em}
.caption{color:#444;margin:.2em 0 .6em} .failed{color:#a00;font-weight:600} code{background:#f5f5f5;padding:0 .2em}
details{margin:.3em 0;max-width:60em} summary{cursor:pointer;font-weight:600} details p{margin:.4em 0 .4em 1.2em}
.yours{border:2px dashed #bbb;border-radius:6px;padding:1em;min-height:6em;color:#888}
"""


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _lead(caption: str, escape) -> str:
    lead, sep, rest = caption.partition(": ")
    return f"<b>{escape(lead)}</b>: {escape(rest)}" if sep else escape(caption)


def to_html(title: str, blocks: list[Block], lang: str = "en") -> str:
    e = html.escape
    out = [f"<!doctype html><html lang='{e(lang)}'><head><meta charset='utf-8'><title>{e(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f" id='{e(b.anchor)}'" if b.anchor else ""
            out.append(f"<h{b.level}{anchor}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p class='{b.kind}'>{e(b.text)}</p>" if b.kind else f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            anchor = f" id='{e(b.anchor)}'" if b.anchor else ""
            out.append(f"<div class='wide-table'><table{anchor}><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b.rows)
                       + "</table></div>")
        elif isinstance(b, Items):
            out.append("<ul>" + "".join(f"<li><b>{e(lead)}</b>: {e(text)}" + (f" <code>{e(code)}</code>" if code else "")
                                        + "</li>" for lead, text, code in b.items) + "</ul>")
        elif isinstance(b, Pictures):
            if b.wide:
                out += [f"<figure class='wide'><img src='{_img(p.path)}' alt='{e(p.alt)}'></figure>" for p in b.pictures]
                continue
            out.append(f"<div class='row' style='grid-template-columns:repeat({b.columns},minmax(0,1fr))'>")
            out += [f"<figure><img src='{_img(p.path)}' alt='{e(p.alt)}'>"
                    + (f"<figcaption>{_lead(p.caption, e)}</figcaption>" if p.caption else "") + "</figure>"
                    for p in b.pictures]
            out.append("</div>")
        elif isinstance(b, Folded):
            out.append(f"<details><summary>{e(b.summary)}</summary>" + "".join(f"<p>{e(p)}</p>" for p in b.paragraphs)
                       + "</details>")
    out.append("</body></html>\n")
    return "\n".join(out)


def to_markdown(blocks: list[Block], folder: Path) -> str:
    """Markdown of the blocks; pictures linked relative to `folder` (the report's)."""
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            text = f"_{b.text}_" if b.kind == "sub" else f"**{b.text}**" if b.kind == "failed" else b.text
            lines += [f"<!-- {text} -->" if b.kind == "yours" else text, ""]
        elif isinstance(b, Table):
            lines += ["| " + " | ".join(b.head) + " |", "|" + "|".join("---" for _ in b.head) + "|",
                      *["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b.rows], ""]
        elif isinstance(b, Items):
            lines += [f"- **{lead}**: {text}" + (f" `{code}`" if code else "") for lead, text, code in b.items] + [""]
        elif isinstance(b, Pictures):
            for p in b.pictures:
                lines += [f"![{p.alt}]({p.path.relative_to(folder).as_posix()})", ""]
                if p.caption:
                    lead, sep, rest = p.caption.partition(": ")
                    lines += [f"**{lead}**: {rest}" if sep else p.caption, ""]
        elif isinstance(b, Folded):
            lines += [f"**{b.summary}**", "", *[p + "\n" for p in b.paragraphs]]
    return "\n".join(lines)
