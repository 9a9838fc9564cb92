"""Table IV and Table VI from a database filled with known values: numbers, reasons, text."""

from __future__ import annotations

import math

import pytest

from imacsr_cli import report
from imacsr_cli.report import tables
from imacsr_cli.report.frames import MixedCellError

from reportdb import PAPER_SHIFT, spec


def _cell(frame, **where):
    f = frame
    for k, v in where.items():
        f = f[f[k] == v]
    assert len(f) == 1, where
    return f.iloc[0]


def test_table_iv_numbers_gains_and_paper_values(report_db):
    url, ids = report_db
    t = report.table_iv(db=url)
    f = t.frame
    conv = _cell(f, method="conventional", dataset="cityscapes", metric="mIoU")
    ours = _cell(f, method="imacsr", dataset="cityscapes", metric="mIoU")
    assert (conv["mean"], conv["std"], conv["n"]) == (pytest.approx(43.76), pytest.approx(0.06), 3)
    assert (ours["mean"], ours["std"], ours["n"]) == (pytest.approx(47.78), pytest.approx(0.10), 3)
    assert ours["run_ids"] == tuple(ids[("city", "imacsr")]) and ours["seeds"] == (0, 1, 2)
    assert ours["paper"] == 47.78 and ours["diff"] == pytest.approx(0.0, abs=1e-9)
    assert ours["gain"] == pytest.approx((47.78 - 43.76) / 43.76 * 100) and round(ours["gain"], 2) == 9.19
    assert ours["paper_gain"] == pytest.approx(9.186, abs=1e-3)
    assert math.isnan(conv["gain"])
    prec = _cell(f, method="imacsr", dataset="cityscapes", metric="mPrecision")
    assert round(prec["gain"], 2) == 15.72

    one = _cell(f, method="conventional", dataset="camvid", metric="mIoU")
    assert (one["mean"], one["n"]) == (pytest.approx(76.02), 1) and math.isnan(one["std"])
    assert tables.fmt_cell(one) == "76.02 \u00b1 \u2013 (n=1)"
    assert _cell(f, method="imacsr", dataset="camvid", metric="mIoU")["missing"] == "1 running, 1 queued"
    assert _cell(f, method="conventional", dataset="synthiasf", metric="mF1")["missing"] == "1 failed: oom"
    gone = _cell(f, method="imacsr", dataset="synthiasf", metric="mIoU")
    assert (gone["n"], gone["missing"]) == (0, "not in any grid") and math.isnan(gone["mean"])
    assert tables.fmt_cell(gone) == "\u2013 (not in any grid)"
    synth = _cell(f, method="imacsr", dataset="synthetic", metric="mIoU")
    assert synth["mean"] == pytest.approx(33.0) and math.isnan(synth["paper"]) and math.isnan(synth["diff"])
    assert synth["gain"] == pytest.approx(10.0)
    assert any("Synthetic: not in the paper" in n for n in t.notes)
    # rows and columns as in the paper, the synthetic data after them
    assert list(dict.fromkeys(f["dataset"])) == ["cityscapes", "camvid", "synthiasf", "synthetic"]


def test_table_iv_under_the_paper_convention_and_within_a_grid(report_db):
    url, _ = report_db
    t = report.table_iv(db=url, grid="table_iv", convention="paper")
    c = _cell(t.frame, method="conventional", dataset="cityscapes", metric="mIoU")
    assert c["mean"] == pytest.approx(43.76 + 100 * PAPER_SHIFT)
    assert "per-image average, eq. (13)" in t.caption
    assert _cell(t.frame, method="imacsr", dataset="synthiasf", metric="mIoU")["missing"] == "not in grid table_iv"
    assert "dataset-level" in report.table_iv(db=url).caption


def test_table_iv_of_an_empty_database_is_the_paper_layout_with_reasons(filler):
    url, _ = filler
    f = report.table_iv(db=url).frame
    assert len(f) == 3 * 2 * 3 * 4
    assert set(f["missing"]) == {"not in any grid"} and (f["n"] == 0).all()
    assert f["paper"].notna().all()


def test_markdown_and_latex_text(filler):
    url, fill = filler
    iv = {"table": "iv"}
    fill.add("g", spec("synthetic", "conventional", 0), iv, v=0.30)
    fill.add("g", spec("synthetic", "conventional", 1), iv, v=0.31)
    fill.add("g", spec("synthetic", "imacsr", 0), iv, v=0.33)
    fill.add("g", spec("cityscapes", "conventional", 0), iv, state="queued")
    t = report.table_iv(db=url, grid="g")
    assert report.render(t, "md") == SMALL_MD
    assert report.render(t, "latex") == SMALL_TEX


def test_mixed_cells_are_refused(filler):
    url, fill = filler
    fill.add("a", spec("cityscapes", "imacsr", 0, count=3), {"table": "iv"}, v=0.47)
    fill.add("b", spec("cityscapes", "imacsr", 1, count=1), {"table": "iv"}, v=0.45)
    with pytest.raises(MixedCellError) as err:
        report.table_iv(db=url)
    assert str(err.value) == (
        "Table IV cell DeepLabv3+/iMacSR/cityscapes mixes runs whose specs differ in points.count (1, 3); "
        "restrict with --grid or fix the grid"
    )
    assert err.value.exit_code == 2
    assert report.table_iv(db=url, grid="a").frame["n"].max() == 1  # one grid alone is fine
    ex = report.explain("iv", "deeplabv3plus/imacsr/cityscapes", db=url)
    assert list(ex.runs["points.count"]) == [3, 1] and ex.differences["points.count"] == [1, 3]
    assert "differ in points.count (1, 3) and train.seed (0, 1)" in ex.summary()


def test_a_gain_between_different_settings_is_flagged(filler):
    url, fill = filler
    fill.add("g", spec("synthetic", "conventional", 0), None, v=0.30)
    fill.add("g", spec("synthetic", "imacsr", 0, train__epochs=5), None, v=0.33)
    t = report.table_iv(db=url)
    assert "DeepLabv3+/synthetic: the gain compares runs that also differ in train.epochs (2, 5)." in t.notes
    assert any("no run is labelled for Table IV" in n for n in t.notes)


def test_table_vi_cells_best_marks_and_findings(report_db):
    url, _ = report_db
    t = report.table_vi(db=url, grid="vi")
    f = t.frame[t.frame["metric"] == "mIoU"]
    assert len(f) == 9 and (f["n"] == 2).all()
    c = _cell(f, num_points=2, position="central")
    assert c["mean"] == pytest.approx(43.6) and c["std"] == pytest.approx(0.2 / math.sqrt(2))
    assert c["cell"] == "DeepLabv3+/synthetic/II/central"
    assert list(f[f["best"]]["position"]) == ["input", "input", "input"]
    verdicts = dict(zip(t.findings["finding"], t.findings["verdict"]))
    assert verdicts == {"VI-I": "agrees", "VI-II": "agrees", "VI-III": "disagrees"}
    assert report.render(t, "md") == VI_MD
    assert report.render(t, "latex") == VI_TEX


def test_labelled_runs_count_and_runs_labelled_for_other_studies_do_not(report_db):
    url, _ = report_db
    # Every grid: the run of cell I/input is labelled for Table VI (grid vi) and Fig. 3 (grid fig3).
    t = report.table_vi(db=url)
    assert _cell(t.frame, num_points=1, position="input", metric="mIoU")["n"] == 2
    t = report.table_vi(db=url, grid="fig3")  # all labelled for Fig. 3: none counts for Table VI
    assert t.frame.empty and t.notes[1].startswith("No run labelled for Table VI; the iMacSR runs with 1-3")


def test_an_empty_cell_names_fitting_runs_labelled_for_other_studies(filler):
    url, fill = filler
    fill.add("g", spec(count=2, position="central"), {"table": "vi"}, v=0.4)
    fill.add("g", spec(count=1, position="input"), {"figure": "3"}, v=0.4)
    f = report.table_vi(db=url).frame
    assert _cell(f, num_points=1, position="input", metric="mIoU")["missing"] == \
        "none for Table VI; 1 run of other studies fits"
    assert _cell(f, num_points=1, position="output", metric="mIoU")["missing"] == "not in any grid"


def test_table_vi_findings_on_partial_and_close_data():
    import pandas as pd

    def frame(vals: dict, std: float = 0.1, n: int = 2) -> pd.DataFrame:
        rows = [{"model": "m", "dataset": "d", "num_points": k, "position": p, "metric": "mIoU",
                 "mean": v, "std": std, "n": n} for (k, p), v in vals.items()]
        return pd.DataFrame(rows, columns=["model", "dataset", "num_points", "position", "metric", "mean",
                                           "std", "n"])

    full = {(1, "input"): 50, (1, "central"): 48, (1, "output"): 49, (2, "input"): 51, (2, "central"): 49,
            (2, "output"): 47, (3, "input"): 52, (3, "central"): 50, (3, "output"): 45}
    v = dict(zip(*tables.check_table_vi(frame(full), "mIoU")[["finding", "verdict"]].T.values))
    assert v == {"VI-I": "agrees", "VI-II": "agrees", "VI-III": "agrees"}
    v = dict(zip(*tables.check_table_vi(frame(full, std=5.0), "mIoU")[["finding", "verdict"]].T.values))
    assert v["VI-I"] == "agrees (within the seeds' spread)"
    partial = {k: x for k, x in full.items() if k != (3, "central")}
    v = dict(zip(*tables.check_table_vi(frame(partial), "mIoU")[["finding", "verdict"]].T.values))
    assert v == {"VI-I": "agrees where measured", "VI-II": "agrees", "VI-III": "agrees where measured"}
    v = dict(zip(*tables.check_table_vi(frame({}), "mIoU")[["finding", "verdict"]].T.values))
    assert set(v.values()) == {"cannot tell"}
    close = {**full, (1, "central"): 50.05}
    v = dict(zip(*tables.check_table_vi(frame(close), "mIoU")[["finding", "verdict"]].T.values))
    assert v["VI-I"] == "disagrees (within the seeds' spread)"


def test_csv_and_json_carry_run_ids(report_db):
    import json

    url, ids = report_db
    t = report.table_iv(db=url, grid="table_iv")
    csv = report.render(t, "csv").splitlines()
    assert csv[0].startswith("table,convention,model,method,dataset,cell,metric,mean,std,n,run_ids,seeds,missing")
    assert " ".join(ids[("city", "imacsr")]) in "\n".join(csv)
    doc = json.loads(report.render(t, "json"))
    cell = next(c for c in doc["cells"] if c["cell"] == "DeepLabv3+/iMacSR/cityscapes" and c["metric"] == "mIoU")
    assert cell["run_ids"] == ids[("city", "imacsr")] and cell["n"] == 3
    assert doc["convention_text"] == "dataset-level confusion matrix"
    assert "Table IV" in doc["paper_source"]
    gone = next(c for c in doc["cells"] if c["cell"] == "DeepLabv3+/iMacSR/synthiasf")
    assert gone["mean"] is None and gone["missing"] == "not in grid table_iv"


SMALL_MD = """\
**Table IV: iMacSR against conventional training.** Ours (mean ± std over seeds, n runs) beside the published values of the paper's Table IV. Metrics in %, dataset-level confusion matrix (the paper: per-image average, eq. (13)). Δ = ours − paper, in points; gain = (iMacSR − Conventional) / Conventional, as the paper computes it.

| Model | Method |  | Cityscapes mIoU | Cityscapes mF1 | Cityscapes mPrecision | Cityscapes mRecall | Synthetic mIoU | Synthetic mF1 | Synthetic mPrecision | Synthetic mRecall |
| --- | --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |
| DeepLabv3+ | Conventional | ours | – (1 queued) | – (1 queued) | – (1 queued) | – (1 queued) | 30.50 ± 0.71 (n=2) | 35.50 ± 0.71 (n=2) | 36.50 ± 0.71 (n=2) | 34.50 ± 0.71 (n=2) |
|  |  | paper | 43.76 | 50.40 | 51.54 | 50.77 | – | – | – | – |
|  |  | Δ | – | – | – | – | – | – | – | – |
|  | iMacSR | ours | – (not in grid g) | – (not in grid g) | – (not in grid g) | – (not in grid g) | 33.00 ± – (n=1) | 38.00 ± – (n=1) | 39.00 ± – (n=1) | 37.00 ± – (n=1) |
|  |  | paper | 47.78 | 56.28 | 59.64 | 55.64 | – | – | – | – |
|  |  | Δ | – | – | – | – | – | – | – | – |
|  |  | gain | – | – | – | – | +8.20% | +7.04% | +6.85% | +7.25% |
|  |  | paper gain | +9.19% | +11.67% | +15.72% | +9.59% | – | – | – | – |

- Runs: grid g; those its grids label for Table IV (table = "iv").
- The paper's values are its eq. (13) per-image averages; ours here are dataset-level, so Δ compares two conventions (--convention paper shows ours under eq. (13)).
- Synthetic: not in the paper, so no published value (–).
- std –: a single seed gives no spread.
"""

SMALL_TEX = """\
\\begin{table*}[t]
\\centering
\\caption{Ours (mean $\\pm$ std over seeds, n runs) beside the published values of the paper's Table IV. Metrics in \\%, dataset-level confusion matrix (the paper: per-image average, eq. (13)). $\\Delta$ = ours $-$ paper, in points; gain = (iMacSR $-$ Conventional) / Conventional, as the paper computes it.}
\\label{tab:imacsr-iv}
\\scriptsize
\\setlength{\\tabcolsep}{3pt}
\\begin{tabular}{lllrrrrrrrr}
\\toprule
 & & & \\multicolumn{4}{c}{Cityscapes (\\%)} & \\multicolumn{4}{c}{Synthetic (\\%)} \\\\
\\cmidrule(lr){4-7} \\cmidrule(lr){8-11}
Model & Method & & mIoU & mF1 & mPrecision & mRecall & mIoU & mF1 & mPrecision & mRecall \\\\
\\midrule
DeepLabv3+ & Conventional & ours & -- (1 queued) & -- (1 queued) & -- (1 queued) & -- (1 queued) & 30.50 $\\pm$ 0.71 (n=2) & 35.50 $\\pm$ 0.71 (n=2) & 36.50 $\\pm$ 0.71 (n=2) & 34.50 $\\pm$ 0.71 (n=2) \\\\
 &  & paper & 43.76 & 50.40 & 51.54 & 50.77 & -- & -- & -- & -- \\\\
 &  & $\\Delta$ & -- & -- & -- & -- & -- & -- & -- & -- \\\\
 & iMacSR & ours & -- (not in grid g) & -- (not in grid g) & -- (not in grid g) & -- (not in grid g) & 33.00 $\\pm$ -- (n=1) & 38.00 $\\pm$ -- (n=1) & 39.00 $\\pm$ -- (n=1) & 37.00 $\\pm$ -- (n=1) \\\\
 &  & paper & 47.78 & 56.28 & 59.64 & 55.64 & -- & -- & -- & -- \\\\
 &  & $\\Delta$ & -- & -- & -- & -- & -- & -- & -- & -- \\\\
 &  & gain & -- & -- & -- & -- & +8.20\\% & +7.04\\% & +6.85\\% & +7.25\\% \\\\
 &  & paper gain & +9.19\\% & +11.67\\% & +15.72\\% & +9.59\\% & -- & -- & -- & -- \\\\
\\bottomrule
\\end{tabular}
\\end{table*}
% Runs: grid g; those its grids label for Table IV (table = "iv").
% The paper's values are its eq. (13) per-image averages; ours here are dataset-level, so Δ compares two conventions (--convention paper shows ours under eq. (13)).
% Synthetic: not in the paper, so no published value (–).
% std –: a single seed gives no spread.
"""

VI_MD = """\
**Table VI: the position of the intermediate points.** Position of the intermediate points: mIoU in % (mean ± std over seeds, n runs), dataset-level confusion matrix. Series I, II, III place 1, 2, 3 points; the best position of each series is in bold.

| Series | close to input | central | close to output |
| --- | --: | --: | --: |
| I (1 point) | **45.10 ± 0.14 (n=2)** | 43.10 ± 0.14 (n=2) | 44.10 ± 0.14 (n=2) |
| II (2 points) | **46.10 ± 0.14 (n=2)** | 43.60 ± 0.14 (n=2) | 42.10 ± 0.14 (n=2) |
| III (3 points) | **47.10 ± 0.14 (n=2)** | 43.30 ± 0.14 (n=2) | 41.10 ± 0.14 (n=2) |

Paper's findings (Section IV-C-2) against ours:

- VI-I: “(I) For each of these three series, the case of “Close-to-Input-Layer” consistently outperforms cases of “Close-to-Central-Layer” and “Close-to-Output-Layer”.” — ours (mIoU): **agrees**; I: input 45.10, central 43.10, output 44.10; II: input 46.10, central 43.60, output 42.10; III: input 47.10, central 43.30, output 41.10.
- VI-II: “(II) Across all three series, as the number of intermediate points increases, the performance of the case of “Close-to-Output-Layer” progressively deteriorates.” — ours (mIoU): **agrees**; output: I 44.10, II 42.10, III 41.10.
- VI-III: “(III) Across all three series, increasing the number of intermediate points consistently improves the performance of the case of “Close-to-Central-Layer”.” — ours (mIoU): **disagrees**; central: I 43.10, II 43.60, III 43.30.

- Runs: grid vi; those its grids label for Table VI (table = "vi").
- The paper's Table VI is an image whose numbers its text does not give: its findings (Section IV-C-2) are stated with our verdict on each.
"""

VI_TEX = """\
\\begin{table}[t]
\\centering
\\caption{Position of the intermediate points: mIoU in \\% (mean $\\pm$ std over seeds, n runs), dataset-level confusion matrix. Series I, II, III place 1, 2, 3 points; the best position of each series is in bold.}
\\label{tab:imacsr-vi}
\\small
\\begin{tabular}{lrrr}
\\toprule
Series & close to input & central & close to output \\\\
\\midrule
I (1 point) & \\textbf{45.10 $\\pm$ 0.14 (n=2)} & 43.10 $\\pm$ 0.14 (n=2) & 44.10 $\\pm$ 0.14 (n=2) \\\\
II (2 points) & \\textbf{46.10 $\\pm$ 0.14 (n=2)} & 43.60 $\\pm$ 0.14 (n=2) & 42.10 $\\pm$ 0.14 (n=2) \\\\
III (3 points) & \\textbf{47.10 $\\pm$ 0.14 (n=2)} & 43.30 $\\pm$ 0.14 (n=2) & 41.10 $\\pm$ 0.14 (n=2) \\\\
\\bottomrule
\\end{tabular}
\\end{table}
% Runs: grid vi; those its grids label for Table VI (table = "vi").
% The paper's Table VI is an image whose numbers its text does not give: its findings (Section IV-C-2) are stated with our verdict on each.
% VI-I (mIoU): agrees; I: input 45.10, central 43.10, output 44.10; II: input 46.10, central 43.60, output 42.10; III: input 47.10, central 43.30, output 41.10
% VI-II (mIoU): agrees; output: I 44.10, II 42.10, III 41.10
% VI-III (mIoU): disagrees; central: I 43.10, II 43.60, III 43.30
"""
