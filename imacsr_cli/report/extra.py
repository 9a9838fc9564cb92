"""The insight figures (diagnostics, curves, convergence), Fig. 2 and index.html, for the CLI.

``build_extra`` makes the figures named, ``write_extra`` writes them (PNG, PDF, CSV), and
``write_page`` writes DIR/index.html over everything a report wrote: h12's tables and Fig. 3/4
(``imacsr_cli.report.Report``) and these. Nothing here prints or imports torch (Fig. 2 imports the
model code when it is built).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imacsr_cli.report import insight
from imacsr_cli.report.html import RunInfo, Section, cells_of_frame, run_infos, verdict_rows, write_index

EXTRA_FIGURES = ("2", "diagnostics", "curves", "convergence")
THEOREM_CLAIM = "(1/T) \u03a3 \u2016\u2207L_T\u2016\u00b2 decays as O(1/\u221aT) (Theorem 1, eq. 6)"


@dataclass
class Extra:
    figures: list[Any] = field(default_factory=list)  # insight.InsightFigure | qualitative.Figure2
    skipped: list[str] = field(default_factory=list)  # one line per figure that could not be made
    gains: Any = None  # insight.code_gains frame (runs with a `code` label: the author's-code ablation)


def build_extra(which: list[str], db: Any = None, grid: str | None = None, images: int = 5,
                run_ids: list[str] | None = None) -> Extra:
    out = Extra()
    mine = [w for w in which if w in insight.FIGURES]
    where = f"grid {grid}" if grid else "the database"
    if mine:
        h = insight.history(db, grid, run_ids)
        gains = insight.code_gains(h.runs)
        out.gains = gains if len(gains) else None
        for w in mine:
            figs = insight.BUILDERS[w](h)
            out.figures += figs
            if not figs:
                out.skipped.append(f"{w}: no run in {where} has per-epoch rows for it; nothing to draw")
    if "2" in which:
        from imacsr_cli.report import qualitative

        figs, skipped = qualitative.figure_2(db, grid, images)
        out.figures += figs
        out.skipped += skipped
    return out


def _module(fig: Any) -> Any:
    if isinstance(fig, insight.InsightFigure):
        return insight
    from imacsr_cli.report import qualitative

    return qualitative


def write_extra(extra: Extra, out_dir: str | Path) -> list[Path]:
    written: list[Path] = []
    for fig in extra.figures:
        written += _module(fig).save(fig, out_dir)
    if extra.gains is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, csv = out / "author_code.md", out / "author_code.csv"
        md.write_text(insight.code_gains_markdown(extra.gains), encoding="utf-8")
        frame = extra.gains.assign(run_ids=extra.gains["run_ids"].map(" ".join))
        csv.write_text(frame.to_csv(index=False, float_format="%.6f"), encoding="utf-8")
        written += [md, csv]
    return written


def to_dict(fig: Any) -> dict[str, Any]:
    return _module(fig).to_dict(fig)


def text_lines(fig: Any) -> list[str]:
    """The figure's gist for a terminal."""
    if isinstance(fig, insight.InsightFigure):
        return [f"{fig.id}: {fig.title}"] + insight.describe(fig)
    lines = [f"Fig. 2: {fig.caption}"]
    for r in fig.data.itertuples():
        lines.append(f"  image #{r.image} {r.column} ({r.run_id}): pixel accuracy {r.pixel_accuracy:.2f}%, "
                     f"mIoU {r.mIoU:.2f}%")
    return lines + ["  The figure itself: --out DIR writes it as PNG and PDF."]


# ---- the page -----------------------------------------------------------------------------------


def _files(out: Path, stem: str, exts: tuple[str, ...]) -> list[str]:
    return [f"{stem}{e}" for e in exts if (out / f"{stem}{e}").exists()]


def sections(rep: Any, extra: Extra, out_dir: str | Path) -> list[Section]:
    """One section per table and figure, in the paper's order, then the insight figures."""
    from imacsr_cli.report import figures as figs
    from imacsr_cli.report.renderers import render

    out = Path(out_dir)
    result: list[Section] = []
    for t in getattr(rep, "tables", []):
        frame_verdicts = []
        if "verdict" in t.frame.columns:
            frame_verdicts = [{"finding": f"{r['cell']} {r.get('metric', '')}".strip(), "claim": "",
                               "verdict": str(r["verdict"]), "ours": ""}
                              for r in t.frame.to_dict("records") if isinstance(r.get("verdict"), str) and r["verdict"]]
        result.append(Section(
            anchor=f"table_{t.id}", title=t.title, markdown=render(t, "md"),
            files=_files(out, f"table_{t.id}", (".md", ".tex", ".csv", ".json")),
            cells=cells_of_frame(t.frame), verdicts=verdict_rows(getattr(t, "findings", None)) + frame_verdicts,
        ))
    by_id = {"2": [], "3": [], "4": []}
    for fd in getattr(rep, "figures", []):
        cells = cells_of_frame(fd.data) + cells_of_frame(getattr(fd, "baseline", None))
        by_id.setdefault(fd.id, []).append(Section(
            anchor=fd.name, title=f"Fig. {fd.id}: {fd.name}", markdown=figs.render(fd, "md"),
            image=f"{fd.name}.png" if (out / f"{fd.name}.png").exists() else None,
            files=_files(out, fd.name, (".pdf", ".csv")), cells=cells,
            verdicts=verdict_rows(getattr(fd, "findings", None)),
        ))
    rest: list[Section] = []
    for fig in extra.figures:
        if isinstance(fig, insight.InsightFigure):
            cells = [(str(s), tuple(dict.fromkeys(r for ids in fig.data.loc[fig.data["series"] == s, "run_ids"]
                                                  for r in ids)))
                     for s in dict.fromkeys(fig.data["series"])]
            verdicts = []
            if fig.fits is not None:
                verdicts = [{"finding": f"Theorem 1 ({f['series']})", "claim": THEOREM_CLAIM,
                             "verdict": f["verdict"], "ours": f"b = {f['exponent']:.3f}, c = {f['c']:.4g}"}
                            for f in fig.fits.to_dict("records")]
            rest.append(Section(anchor=fig.name, title=f"{fig.id.capitalize()}: {fig.title}", caption=fig.caption,
                                image=f"{fig.name}.png", files=_files(out, fig.name, (".pdf", ".csv", "_fit.csv")),
                                notes=fig.notes, cells=cells, verdicts=verdicts))
        else:
            by_id["2"].append(Section(anchor=fig.name, title=f"Fig. 2 / Table V: {fig.name}", caption=fig.caption,
                                      image=f"{fig.name}.png", files=_files(out, fig.name, (".pdf", ".csv")),
                                      notes=fig.notes, cells=[(c, (r,)) for c, r in fig.runs.items()]))
    if extra.gains is not None:
        rest.append(Section(anchor="author_code", title="The author's code: the gain under each code",
                            markdown=insight.code_gains_markdown(extra.gains),
                            files=_files(out, "author_code", (".md", ".csv")),
                            cells=[(f"{r['model']}/{r['dataset']}/code {r['code']}", tuple(r["run_ids"]))
                                   for r in extra.gains.to_dict("records")]))
    return result + by_id["2"] + by_id["3"] + by_id["4"] + [s for k, v in by_id.items()
                                                            if k not in ("2", "3", "4") for s in v] + rest


def write_page(out_dir: str | Path, rep: Any, extra: Extra, db: Any = None, grid: str | None = None,
               skipped: list[str] | None = None, convention: str = "dataset") -> Path:
    """DIR/index.html over the report written into DIR."""
    infos: dict[str, RunInfo] = run_infos(db, grid)
    scope = f"grid {grid}" if grid else "every grid"
    title = f"imacsr report: {grid}" if grid else "imacsr report"
    meta = [f"Runs of {scope}: {len(infos)} ({sum(i.state == 'succeeded' for i in infos.values())} succeeded). "
            f"Metrics in %, {'dataset-level confusion matrix' if convention == 'dataset' else 'per-image average, eq. (13)'}"
            f"; mean \u00b1 std over seeds."]
    return write_index(out_dir, sections(rep, extra, out_dir), infos, title, meta,
                       list(skipped or []) + extra.skipped)
