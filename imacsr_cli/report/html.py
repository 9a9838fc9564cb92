"""index.html: the whole report on one page, readable offline.

Every table and figure of a report directory, the verdicts on the paper's findings, the paper's
numbers beside ours (as the tables print them), and for each cell its runs: id, seed, state, the commit
that trained it and a link to its run directory. One self-contained file: inline CSS, images by
relative path (the PNGs beside it), no script, nothing fetched from the network.

Tables and h12's figures are turned into HTML from their Markdown rendering (the one text form every
table has), so the page shows exactly what table_iv.md and friends say.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1200px; margin: 1.5em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em;
       margin-top: 2em; } h3 { margin-top: 1.5em; }
.meta { color: #666; } nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f4f4f6; } td:first-child, th:first-child { text-align: left; }
td.l, th.l { text-align: left; } code { font-size: 12px; background: #f4f4f6; padding: 0 3px; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: 13px; max-width: 900px; }
.verdict { font-weight: 600; padding: 0 5px; border-radius: 3px; }
.v-supported { background: #d8f3dc; color: #1b5e20; } .v-contradicted { background: #fde2e1; color: #9b1c1c; }
.v-inconclusive, .v-no-spread { background: #eee; color: #444; }
.notes { color: #555; font-size: 12.5px; } details { margin: .4em 0; }
"""

VERDICT_WORDS = ("supported", "contradicted", "inconclusive", "no spread", "no_spread")


@dataclass
class Section:
    """One table or figure on the page."""

    anchor: str
    title: str
    markdown: str = ""  # the table's / figure data's Markdown (tables and Fig. 3/4)
    caption: str = ""
    image: str | None = None  # a PNG in the output directory
    files: list[str] = field(default_factory=list)  # other files of it (pdf, csv, ...)
    notes: list[str] = field(default_factory=list)
    cells: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (cell label, run ids)
    verdicts: list[dict[str, str]] = field(default_factory=list)  # finding, claim, verdict, ours


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def inline(text: str) -> str:
    """Markdown inline marks → HTML: **bold**, *italic*, `code`; verdict words highlighted."""
    out = esc(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = out.replace("\\|", "|")
    return out


def verdict_badge(word: str) -> str:
    """A verdict, coloured by its sense (supported / contradicted / neither), whatever its exact wording."""
    key = word.strip().lower()
    cls = ("v-supported" if key.startswith(("supported", "agrees")) else
           "v-contradicted" if key.startswith(("contradicted", "disagrees")) else "v-inconclusive")
    return f'<span class="verdict {cls}">{esc(word)}</span>'


def markdown_to_html(md: str) -> str:
    """The Markdown our renderers write (paragraphs, pipe tables, '- ' lists) as HTML."""
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i].rstrip())
                i += 1
            out.append(_md_table(block))
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul class=\"notes\">" + "".join(items) + "</ul>")
            continue
        if line:
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _cells(row: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", row.strip())
    return [p.strip() for p in parts[1:-1]]


def _md_table(block: list[str]) -> str:
    header = _cells(block[0])
    body = block[2:] if len(block) > 1 and set(block[1].replace("|", "").strip()) <= set("-: ") else block[1:]
    align = ["l" if not c.strip().endswith(":") else "r" for c in _cells(block[1])] if len(block) > 1 else []
    out = ["<table>", "<tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr>"]
    for row in body:
        cells = _cells(row)
        tds = []
        for j, c in enumerate(cells):
            cls = ' class="l"' if j < len(align) and align[j] == "l" else ""
            tds.append(f"<td{cls}>{inline(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


# ---- the runs behind the cells ------------------------------------------------------------------


@dataclass
class RunInfo:
    run_id: str
    seed: int | None
    state: str
    commit: str | None
    run_dir: str | None


def run_infos(db: Any, grid: str | None) -> dict[str, RunInfo]:
    """Every run of the scope with its seed, state, training commit (result.json) and directory."""
    from imacsr_cli.report.frames import open_store

    store = open_store(db)
    try:
        recs = store.runs_frame(grid, records=True)
        codes = {r["run_id"]: r.get("code") for r in store.report_rows(grid, ())[0]}
    finally:
        if store is not db:
            store.close()
    out = {}
    for r in recs:
        commit = _commit(codes.get(r["run_id"]))
        if commit is None and r.get("run_dir"):  # a run finished before the database kept the code
            try:
                result = json.loads((Path(r["run_dir"]) / "result.json").read_text())
                commit = _commit(result.get("code")) or result.get("git_commit")
            except (OSError, ValueError, AttributeError):
                commit = None
        out[r["run_id"]] = RunInfo(r["run_id"], r.get("seed"), r.get("state", ""), commit, r.get("run_dir"))
    return out


def _commit(code: Any) -> str | None:
    """The commit of a stored code version (JSON text or dict: {"imacsr", "commit", "dirty"})."""
    if isinstance(code, str):
        try:
            code = json.loads(code)
        except ValueError:
            return None
    if isinstance(code, dict) and code.get("commit"):
        return str(code["commit"]) + ("+dirty" if code.get("dirty") else "")
    return None


def cells_of_frame(frame: pd.DataFrame) -> list[tuple[str, tuple[str, ...]]]:
    """(cell label, run ids) of a table or figure frame, once per cell (its metrics share the runs)."""
    if frame is None or "cell" not in frame.columns or "run_ids" not in frame.columns:
        return []
    seen: dict[str, tuple[str, ...]] = {}
    for cell, ids in zip(frame["cell"], frame["run_ids"]):
        ids = tuple(ids) if isinstance(ids, (list, tuple)) else tuple(str(ids).split())
        seen[str(cell)] = tuple(dict.fromkeys(seen.get(str(cell), ()) + ids))
    return list(seen.items())


def verdict_rows(frame: pd.DataFrame | None) -> list[dict[str, str]]:
    if frame is None or not isinstance(frame, pd.DataFrame) or "verdict" not in frame.columns:
        return []
    rows = []
    for r in frame.to_dict("records"):
        rows.append({"finding": str(r.get("finding", r.get("series", ""))), "claim": str(r.get("claim", "")),
                     "verdict": str(r.get("verdict", "")), "ours": str(r.get("ours", ""))})
    return rows


def _runs_table(cells: Sequence[tuple[str, tuple[str, ...]]], infos: dict[str, RunInfo], out_dir: Path) -> str:
    rows = []
    for cell, ids in cells:
        if not ids:
            rows.append(f'<tr><td class="l">{esc(cell)}</td><td class="l" colspan="5">no finished run</td></tr>')
            continue
        for k, run_id in enumerate(ids):
            info = infos.get(run_id, RunInfo(run_id, None, "?", None, None))
            link = esc(run_id)
            if info.run_dir:
                rel = os.path.relpath(Path(info.run_dir).resolve(), out_dir.resolve())
                link = f'<a href="{esc(Path(rel).as_posix())}/"><code>{esc(run_id)}</code></a>'
            first = f'<td class="l" rowspan="{len(ids)}">{esc(cell)}</td>' if k == 0 else ""
            commit = (f"<code>{esc(info.commit[:12])}</code>" + (" (dirty)" if info.commit.endswith("+dirty") else "")
                      if info.commit else "\u2013")
            rows.append(f"<tr>{first}<td class=\"l\">{link}</td><td>{esc(info.seed if info.seed is not None else '')}"
                        f"</td><td class=\"l\">{esc(info.state)}</td><td class=\"l\">{commit}</td></tr>")
    return ("<table><tr><th>cell</th><th class=\"l\">run</th><th>seed</th><th class=\"l\">state</th>"
            "<th class=\"l\">commit</th></tr>"
            + "".join(rows) + "</table>")


# ---- the page -----------------------------------------------------------------------------------


def render_page(sections: Sequence[Section], infos: dict[str, RunInfo], out_dir: Path, title: str,
                meta: Iterable[str] = (), skipped: Sequence[str] = ()) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>"]
    parts += [f'<p class="meta">{esc(m)}</p>' for m in meta]
    parts.append("<nav>" + "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections) + "</nav>")
    verdicts = [(s, v) for s in sections for v in s.verdicts]
    parts.append('<h2 id="verdicts">Verdicts on the paper\'s findings</h2>')
    if verdicts:
        parts.append("<table><tr>" + "".join(f'<th class="l">{h}</th>' for h in ("where", "finding", "claim", "verdict",
                                                                                "ours")) + "</tr>")
        for s, v in verdicts:
            parts.append(f'<tr><td class="l"><a href="#{esc(s.anchor)}">{esc(s.title)}</a></td>'
                         f'<td class="l">{esc(v["finding"])}</td><td class="l">{esc(v["claim"])}</td>'
                         f'<td class="l">{verdict_badge(v["verdict"])}</td><td class="l">{esc(v["ours"])}</td></tr>')
        parts.append("</table>")
    else:
        parts.append("<p>No finding could be checked with these runs.</p>")
    for s in sections:
        parts.append(f'<section><h2 id="{esc(s.anchor)}">{esc(s.title)}</h2>')
        if s.image:
            parts.append(f'<figure><img src="{esc(s.image)}" alt="{esc(s.title)}">'
                         f"<figcaption>{inline(s.caption)}</figcaption></figure>")
        elif s.caption:
            parts.append(f"<p>{inline(s.caption)}</p>")
        if s.markdown:
            parts.append(markdown_to_html(s.markdown))
        if s.notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{inline(n)}</li>" for n in s.notes) + "</ul>")
        if s.files:
            parts.append('<p class="notes">Files: ' + ", ".join(
                f'<a href="{esc(f)}">{esc(f)}</a>' for f in s.files) + "</p>")
        if s.cells:
            parts.append(f"<details><summary>Runs behind each cell ({len(s.cells)} cells)</summary>")
            parts.append(_runs_table(s.cells, infos, out_dir))
            parts.append("</details>")
        parts.append("</section>")
    if skipped:
        parts.append('<h2 id="skipped">Not drawn</h2><ul>' + "".join(f"<li>{esc(x)}</li>" for x in skipped) + "</ul>")
    parts.append(f'<p class="meta">Written by imacsr report at {esc(time.strftime("%Y-%m-%d %H:%M:%S"))}; '
                 "one file, no scripts, nothing fetched from the network.</p></body></html>")
    return "\n".join(parts) + "\n"


def write_index(out_dir: str | Path, sections: Sequence[Section], infos: dict[str, RunInfo], title: str,
                meta: Iterable[str] = (), skipped: Sequence[str] = ()) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_page(sections, infos, out, title, meta, skipped), encoding="utf-8")
    os.replace(tmp, path)  # never a half-written page
    return path
