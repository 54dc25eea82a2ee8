"""`aelab check submissions/*/model.py --table out.csv`: a class's submissions in one table.

Each submission is checked in its own process (`aelab check FILE --json`), with a time limit
and a memory cap, so that one that hangs, crashes, raises on import or calls sys.exit is a row
that says so and the table goes on. This isolates submissions from each other; it does not
sandbox them: their code runs with the rights of whoever runs the command.
"""

from __future__ import annotations

import concurrent.futures
import csv
import html
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aelab import hardware
from aelab.checking import course_words as words
from aelab.course.code import CLASSES, Sizes
from aelab.errors import AelabError
from aelab.files import check_output, write_atomic


@dataclass
class Row:
    submission: str  # the submission's folder name (or file, where folders repeat)
    file: str
    status: str  # checked | mistakes | raised | timed out | crashed | exited
    detail: str = ""
    models: dict[str, str] = field(default_factory=dict)  # AE/VAE/CVAE -> ok | N mistake(s) | absent
    codes: dict[str, list[str]] = field(default_factory=dict)  # mistake code -> the models it was named in


def _limits(memory_gb: float):
    def apply():
        import resource
        cap = int(memory_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return apply


def check_one(file: Path, sizes: Sizes, seconds: float, memory_gb: float, threads: int) -> Row:
    """One submission in its own process."""
    name = file.parent.name or file.name
    command = [sys.executable, "-m", "aelab", "check", str(file), "--json",
               "--hidden-size", str(sizes.hidden_size), "--latent-size", str(sizes.latent_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds, env=env, cwd=file.parent,
                              preexec_fn=_limits(memory_gb) if os.name == "posix" else None)
    except subprocess.TimeoutExpired:
        return Row(name, str(file), "timed out", f"over {seconds:g} s")
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode in (0, 1):
        try:
            found = json.loads(done.stdout)
        except json.JSONDecodeError:
            return Row(name, str(file), "exited", f"exit {done.returncode} without a result: {last[:200]}")
        row = Row(name, str(file), "mistakes" if done.returncode else "checked")
        for kind in CLASSES:
            if kind not in found["models"]:
                row.models[kind] = "absent"
                continue
            errors = [m for m in found["mistakes"] if m["model"] == kind and not m["warning"]]
            failed = [c for c in found["checks"] if c["model"] == kind and not c["passed"]]
            row.models[kind] = "ok" if not errors and not failed else f"{len(errors) + len(failed)} failed"
        for m in found["mistakes"]:
            row.codes.setdefault(m["code"], []).append(m["model"])
        return row
    if done.returncode == 2:
        return Row(name, str(file), "raised", last.removeprefix("aelab: error: ")[:300])
    if done.returncode < 0:
        return Row(name, str(file), "crashed", f"killed by signal {-done.returncode} (memory over {memory_gb:g} GiB?)")
    return Row(name, str(file), "exited", f"exit {done.returncode}: {last[:200]}")


def check_all(files: list[Path], sizes: Sizes, seconds: float, memory_gb: float, jobs: int | None = None) -> list[Row]:
    jobs = jobs or max(1, os.cpu_count() or 1)
    threads = hardware.threads_per(jobs)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda f: check_one(f, sizes, seconds, memory_gb, threads), files))


def _names(rows: list[Row]) -> None:
    """Submissions named by their folder, or by the file's path where two folders share a name."""
    seen = [r.submission for r in rows]
    for r in rows:
        if seen.count(r.submission) > 1:
            r.submission = r.file


def columns(rows: list[Row]) -> list[str]:
    codes = sorted({c for r in rows for c in r.codes})
    return ["submission", "status", "detail", *CLASSES, *codes]


def values(row: Row, cols: list[str]) -> list[str]:
    fixed = {"submission": row.submission, "status": row.status, "detail": row.detail}
    return [fixed[c] if c in fixed else row.models.get(c, "") if c in CLASSES else " ".join(row.codes.get(c, []))
            for c in cols]


def to_csv(rows: list[Row]) -> str:
    cols = columns(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(cols)
    for r in rows:
        writer.writerow(values(r, cols))
    return out.getvalue()


def to_html(rows: list[Row], lang) -> str:
    cols = columns(rows)
    meaning = {code: lang(text) for code, text in words.CODES.items()}
    head = "".join(f"<th title=\"{html.escape(meaning.get(c, ''))}\">{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr class=\"{}\">{}</tr>".format(
        html.escape(r.status.replace(" ", "-")), "".join(f"<td>{html.escape(v)}</td>" for v in values(r, cols)))
        for r in rows)
    legend = "".join(f"<li><code>{html.escape(c)}</code>: {html.escape(t)}</li>" for c, t in meaning.items()
                     if c in cols)
    return f"""<!doctype html><html lang="{lang.code}"><meta charset="utf-8"><title>aelab check</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f3f3f3}}
tr.checked td:nth-child(2){{color:#1a7f37}}tr.mistakes td:nth-child(2){{color:#b35900}}
tr.raised td:nth-child(2),tr.timed-out td:nth-child(2),tr.crashed td:nth-child(2),tr.exited td:nth-child(2){{color:#c62828}}
</style><h1>aelab check: {len(rows)} submissions</h1>
<p>{html.escape(lang(words.ISOLATION))}</p>
<table><tr>{head}</tr>{body}</table><ul>{legend}</ul></html>
"""


def main(files: list[str], table: str | None, *, sizes: Sizes, lang, seconds: float, memory_gb: float) -> int:
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise AelabError(f"{p}: no such file")
    if seconds <= 0 or memory_gb <= 0:
        raise AelabError("--time-limit, --memory-gb: must be above 0")
    out = check_output(table, "--table") if table else None
    if out is not None and out.suffix.lower() != ".csv":
        raise AelabError(f"{out}: the table is a .csv file (its .html is written beside it)")
    rows = check_all(paths, sizes, seconds, memory_gb)
    _names(rows)
    if out is not None:
        write_atomic(out, to_csv(rows))
        write_atomic(out.with_suffix(".html"), to_html(rows, lang))
        print(f"table: {out} and {out.with_suffix('.html')}")
    for r in rows:
        print(f"{r.status:<10} {r.submission}  {r.detail or ' '.join(f'{k}:{v}' for k, v in r.models.items())}")
    return 1 if any(r.status != "checked" for r in rows) else 0
