"""Table IV and Table VI from a database filled with known values: numbers, reasons, text."""

from __future__ import annotations

import math
import re

import pytest

from imacsr_cli import report
from imacsr_cli.report import paper, stats, tables
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
    # the fixture's seeds differ by the same 0.2 points in every cell: the paired differences are
    # exact, so every difference is significant; VI-III: central rises from I to II, falls to III
    assert verdicts == {"VI-I": "supported", "VI-II": "supported", "VI-III": "contradicted"}
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


def _vi_frame(vals: dict, spread: float = 0.1, seeds: int = 3) -> "pd.DataFrame":
    """A Table VI cell frame: each cell's seeds 0, 1, ... at its mean plus seeded noise of sd
    ``spread`` (independent per cell, so pairing by seed removes nothing)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for (k, p), v in vals.items():
        values = tuple(float(x) for x in v + spread * rng.standard_normal(seeds))
        rows.append({"model": "m", "dataset": "d", "num_points": k, "position": p, "metric": "mIoU",
                     "mean": float(np.mean(values)), "n": seeds, "values": values, "seeds": tuple(range(seeds))})
    return pd.DataFrame(rows, columns=["model", "dataset", "num_points", "position", "metric", "mean", "n", "values",
                                       "seeds"])


VI_FULL = {(1, "input"): 50, (1, "central"): 48, (1, "output"): 49, (2, "input"): 51, (2, "central"): 49,
           (2, "output"): 47, (3, "input"): 52, (3, "central"): 50, (3, "output"): 45}


def _vi_verdicts(frame) -> dict[str, str]:
    f = tables.check_table_vi(frame, "mIoU")
    return dict(zip(f["finding"], f["verdict"]))


def test_table_vi_findings_are_holm_families_of_t_tests():
    # clear differences (1-7 points) at a spread of 0.1: every comparison holds
    assert _vi_verdicts(_vi_frame(VI_FULL)) == {"VI-I": "supported", "VI-II": "supported", "VI-III": "supported"}
    # the same means at a spread of 5 points: nothing can be told, and the output says what could
    wide = _vi_verdicts(_vi_frame(VI_FULL, spread=5.0))
    assert set(wide.values()) == {"inconclusive"}
    stats_text = tables.check_table_vi(_vi_frame(VI_FULL, spread=5.0), "mIoU")["statistics"][0]
    assert stats_text.startswith("inconclusive (Holm-corrected over 6 comparisons, \u03b1 = 0.05); I input vs central: ")
    assert "could have detected" in stats_text and "seeds per arm" in stats_text
    # a missing cell: its comparisons have no spread, so VI-I cannot be supported, and says why
    partial = {k: x for k, x in VI_FULL.items() if k != (3, "central")}
    v = _vi_verdicts(_vi_frame(partial))
    assert v == {"VI-I": "no spread yet: run \u2265 2 seeds", "VI-II": "supported",
                 "VI-III": "no spread yet: run \u2265 2 seeds"}
    # a significant reversal settles "in every series" even with a cell missing
    flipped = {**partial, (1, "central"): 55}
    assert _vi_verdicts(_vi_frame(flipped))["VI-I"] == "contradicted"
    assert set(_vi_verdicts(_vi_frame({})).values()) == {"no spread yet: run \u2265 2 seeds"}
    # one seed per cell: never "disagrees", always the same words as the figures use
    one = _vi_frame(VI_FULL, seeds=1)
    assert set(_vi_verdicts(one).values()) == {"no spread yet: run \u2265 2 seeds"}


def test_a_family_adjusts_its_p_values_by_holm():
    comps = [stats.compare([50.0 + d, 51.0 + d, 52.5 + d], [50.0, 51.5, 52.0], label=str(d)) for d in (0.5, 1.5, 3.0)]
    fam = stats.family(comps)
    raw = [c.p for c in comps]
    # by hand: the k-th smallest (k = 0, 1, 2) times 3 - k, kept non-decreasing, capped at 1
    order = sorted(range(3), key=lambda i: raw[i])
    want, run = [0.0] * 3, 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, raw[i] * (3 - k)))
        want[i] = run
    assert [c.p_adj for c in fam.comparisons] == pytest.approx(want)
    assert all(c.family_size == 3 for c in fam.comparisons)
    assert fam.describe().startswith(f"{fam.verdict} (Holm-corrected over 3 comparisons")


def test_table_iv_cell_test_by_hand(filler):
    url, fill = filler
    iv = {"table": "iv"}
    for seed, (c, i) in enumerate(((0.30, 0.33), (0.31, 0.345))):
        fill.add("g", spec("synthetic", "conventional", seed), iv, v=c)
        fill.add("g", spec("synthetic", "imacsr", seed), iv, v=i)
    t = report.table_iv(db=url, grid="g")
    r = _cell(t.frame, method="imacsr", dataset="synthetic", metric="mIoU")
    # shared seeds 0, 1: paired; differences 3.0 and 3.5 points, mean 3.25, se 0.25, t = 13, df = 1,
    # where the two-sided p is 1 - (2 / pi) atan(13) and t(0.975, 1) = 12.7062
    assert r["test"] == "paired t" and r["n_conventional"] == 2 and r["n"] == 2
    assert r["gain_pts"] == pytest.approx(3.25)
    assert r["p"] == pytest.approx(1 - 2 / math.pi * math.atan(13))
    assert (r["gain_low"], r["gain_high"]) == (pytest.approx(3.25 - 12.7062 * 0.25, abs=1e-4),
                                               pytest.approx(3.25 + 12.7062 * 0.25, abs=1e-4))
    assert r["verdict"] == "supported"  # p = 0.049
    assert math.isnan(r["paper_gain_pts"])  # no published value for the synthetic data
    [row] = t.findings[(t.findings["metric"] == "mIoU")].itertuples()
    assert row.statistics == ("DeepLabv3+/synthetic mIoU: iMacSR vs Conventional: +3.25 points "
                              "[95% CI +0.07, +6.43], p = 0.049 (paired t), n = 2/2: supported")


def test_table_iv_claims_the_papers_own_direction():
    """SeaFormer on SynthiaSF: the paper's iMacSR is 0.54 worse; the test is of that claim."""
    import pandas as pd

    def rows(method, mean):
        return {"model": "seaformer", "method": method, "dataset": "synthiasf", "metric": "mIoU", "mean": mean,
                "n": 3, "values": (mean - 0.1, mean, mean + 0.1), "seeds": (0, 1, 2),
                "paper": paper.table_iv_value("seaformer", method, "synthiasf", "mIoU")}

    frame = pd.DataFrame([rows("conventional", 24.74), rows("imacsr", 24.20)])
    [f] = tables._iv_comparisons(frame).itertuples()
    assert f.verdict == "supported" and f.claim.startswith("conventional training beats iMacSR")
    assert f.paper == "-0.54 points"
    assert "the paper's" not in f.statistics  # supported: no power note


def test_csv_and_json_carry_run_ids(report_db):
    import json

    url, ids = report_db
    t = report.table_iv(db=url, grid="table_iv")
    csv = report.render(t, "csv").splitlines()
    assert csv[0].startswith("table,convention,model,method,dataset,cell,metric,mean_pct,std_pct,n,run_ids,seeds,"
                             "values_pct,missing,pending,code_versions,paper_pct,diff_pts,gain_rel_pct,paper_gain_rel_pct,gain_pts,"
                             "gain_low_pts,gain_high_pts,p,test,n_conventional,paper_gain_pts,verdict")
    assert " ".join(ids[("city", "imacsr")]) in "\n".join(csv)
    doc = json.loads(report.render(t, "json"))
    cell = next(c for c in doc["cells"] if c["cell"] == "DeepLabv3+/iMacSR/cityscapes" and c["metric"] == "mIoU")
    assert cell["run_ids"] == ids[("city", "imacsr")] and cell["n"] == 3
    assert doc["convention_text"] == "dataset-level confusion matrix"
    assert "Table IV" in doc["paper_source"]
    gone = next(c for c in doc["cells"] if c["cell"] == "DeepLabv3+/iMacSR/synthiasf")
    assert gone["mean_pct"] is None and gone["missing"] == "not in grid table_iv"
    assert cell["mean_pct"] == pytest.approx(47.78) and cell["values_pct"] == pytest.approx([47.68, 47.78, 47.88])
    assert cell["gain_pts"] == pytest.approx(4.02) and cell["test"] == "paired t" and cell["verdict"] == "supported"
    assert doc["unit"].startswith("metrics in percent (_pct)")


SMALL_MD = """\
**Table IV: iMacSR against conventional training.** Ours (mean ± std over seeds, n runs) beside the published values of the paper's Table IV. Metrics in %, dataset-level confusion matrix (the paper: per-image average, eq. (13)). Δ = ours − paper, in points. Gain in points: iMacSR − Conventional with its 95% confidence interval (paired t-test over shared seeds, else Welch's); relative gain = (iMacSR − Conventional) / Conventional, as the paper computes it. Verdict on the paper's direction at α = 0.05: supported, contradicted or inconclusive.

| Model | Method |  | Cityscapes mIoU | Cityscapes mF1 | Cityscapes mPrecision | Cityscapes mRecall | Synthetic mIoU | Synthetic mF1 | Synthetic mPrecision | Synthetic mRecall |
| --- | --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |
| DeepLabv3+ | Conventional | ours | – (1 queued) | – (1 queued) | – (1 queued) | – (1 queued) | 30.50 ± 0.71 (n=2) | 35.50 ± 0.71 (n=2) | 36.50 ± 0.71 (n=2) | 34.50 ± 0.71 (n=2) |
|  |  | paper | 43.76 | 50.40 | 51.54 | 50.77 | – | – | – | – |
|  |  | Δ | – | – | – | – | – | – | – | – |
|  | iMacSR | ours | – (not in grid g) | – (not in grid g) | – (not in grid g) | – (not in grid g) | 33.00 ± – (n=1) | 38.00 ± – (n=1) | 39.00 ± – (n=1) | 37.00 ± – (n=1) |
|  |  | paper | 47.78 | 56.28 | 59.64 | 55.64 | – | – | – | – |
|  |  | Δ | – | – | – | – | – | – | – | – |
|  |  | gain (pts, 95% CI) | – | – | – | – | +2.50 | +2.50 | +2.50 | +2.50 |
|  |  | paper gain (pts) | +4.02 | +5.88 | +8.10 | +4.87 | – | – | – | – |
|  |  | gain (rel.) | – | – | – | – | +8.20% | +7.04% | +6.85% | +7.25% |
|  |  | paper gain (rel.) | +9.19% | +11.67% | +15.72% | +9.59% | – | – | – | – |
|  |  | verdict | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds | no spread yet: run ≥ 2 seeds |

iMacSR against conventional training, cell by cell (each its own test):

- DeepLabv3+/cityscapes mIoU: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/cityscapes mF1: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/cityscapes mPrecision: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/cityscapes mRecall: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/synthetic mIoU: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/synthetic mF1: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/synthetic mPrecision: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds.
- DeepLabv3+/synthetic mRecall: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds.

- Runs: grid g; those its grids label for Table IV (table = "iv").
- The paper's values are its eq. (13) per-image averages; ours here are dataset-level, so Δ compares two conventions (--convention paper shows ours under eq. (13)).
- Synthetic: not in the paper, so no published value (–).
- std –: a single seed gives no spread, so its comparisons say “no spread yet: run ≥ 2 seeds”.
"""

SMALL_TEX = """\
\\begin{table*}[t]
\\centering
\\caption{Ours (mean $\\pm$ std over seeds, n runs) beside the published values of the paper's Table IV. Metrics in \\%, dataset-level confusion matrix (the paper: per-image average, eq. (13)). $\\Delta$ = ours $-$ paper, in points. Gain in points: iMacSR $-$ Conventional with its 95\\% confidence interval (paired t-test over shared seeds, else Welch's); relative gain = (iMacSR $-$ Conventional) / Conventional, as the paper computes it. Verdict on the paper's direction at α = 0.05: supported, contradicted or inconclusive.}
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
 &  & gain (pts, 95\\% CI) & -- & -- & -- & -- & +2.50 & +2.50 & +2.50 & +2.50 \\\\
 &  & paper gain (pts) & +4.02 & +5.88 & +8.10 & +4.87 & -- & -- & -- & -- \\\\
 &  & gain (rel.) & -- & -- & -- & -- & +8.20\\% & +7.04\\% & +6.85\\% & +7.25\\% \\\\
 &  & paper gain (rel.) & +9.19\\% & +11.67\\% & +15.72\\% & +9.59\\% & -- & -- & -- & -- \\\\
 &  & verdict & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds & no spread yet: run ≥ 2 seeds \\\\
\\bottomrule
\\end{tabular}
\\end{table*}
% Runs: grid g; those its grids label for Table IV (table = "iv").
% The paper's values are its eq. (13) per-image averages; ours here are dataset-level, so Δ compares two conventions (--convention paper shows ours under eq. (13)).
% Synthetic: not in the paper, so no published value (–).
% std –: a single seed gives no spread, so its comparisons say “no spread yet: run ≥ 2 seeds”.
% IV DeepLabv3+/cityscapes (mIoU): no spread yet: run ≥ 2 seeds; – (n=0) vs – (n=0); DeepLabv3+/cityscapes mIoU: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/cityscapes (mF1): no spread yet: run ≥ 2 seeds; – (n=0) vs – (n=0); DeepLabv3+/cityscapes mF1: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/cityscapes (mPrecision): no spread yet: run ≥ 2 seeds; – (n=0) vs – (n=0); DeepLabv3+/cityscapes mPrecision: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/cityscapes (mRecall): no spread yet: run ≥ 2 seeds; – (n=0) vs – (n=0); DeepLabv3+/cityscapes mRecall: iMacSR vs Conventional: n = 0/0: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/synthetic (mIoU): no spread yet: run ≥ 2 seeds; 33.00 (n=1) vs 30.50 (n=2); DeepLabv3+/synthetic mIoU: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/synthetic (mF1): no spread yet: run ≥ 2 seeds; 38.00 (n=1) vs 35.50 (n=2); DeepLabv3+/synthetic mF1: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/synthetic (mPrecision): no spread yet: run ≥ 2 seeds; 39.00 (n=1) vs 36.50 (n=2); DeepLabv3+/synthetic mPrecision: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds
% IV DeepLabv3+/synthetic (mRecall): no spread yet: run ≥ 2 seeds; 37.00 (n=1) vs 34.50 (n=2); DeepLabv3+/synthetic mRecall: iMacSR vs Conventional: +2.50 points (no interval), n = 1/2: no spread yet: run ≥ 2 seeds
"""

VI_MD = """\
**Table VI: the position of the intermediate points.** Position of the intermediate points: mIoU in % (mean ± std over seeds, n runs), dataset-level confusion matrix. Series I, II, III place 1, 2, 3 points; the best position of each series is in bold.

| Series | close to input | central | close to output |
| --- | --: | --: | --: |
| I (1 point) | **45.10 ± 0.14 (n=2)** | 43.10 ± 0.14 (n=2) | 44.10 ± 0.14 (n=2) |
| II (2 points) | **46.10 ± 0.14 (n=2)** | 43.60 ± 0.14 (n=2) | 42.10 ± 0.14 (n=2) |
| III (3 points) | **47.10 ± 0.14 (n=2)** | 43.30 ± 0.14 (n=2) | 41.10 ± 0.14 (n=2) |

Paper's findings (Section IV-C-2) against ours:

- VI-I: “(I) For each of these three series, the case of “Close-to-Input-Layer” consistently outperforms cases of “Close-to-Central-Layer” and “Close-to-Output-Layer”.” — ours (mIoU): **supported (Holm-corrected over 6 comparisons, α = 0.05)**; I: input 45.10 (n=2), central 43.10 (n=2), output 44.10 (n=2); II: input 46.10 (n=2), central 43.60 (n=2), output 42.10 (n=2); III: input 47.10 (n=2), central 43.30 (n=2), output 41.10 (n=2).
  - I input vs central: +2.00 points [95% CI +2.00, +2.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - I input vs output: +1.00 points [95% CI +1.00, +1.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - II input vs central: +2.50 points [95% CI +2.50, +2.50], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - II input vs output: +4.00 points [95% CI +4.00, +4.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - III input vs central: +3.80 points [95% CI +3.80, +3.80], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - III input vs output: +6.00 points [95% CI +6.00, +6.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
- VI-II: “(II) Across all three series, as the number of intermediate points increases, the performance of the case of “Close-to-Output-Layer” progressively deteriorates.” — ours (mIoU): **supported (Holm-corrected over 2 comparisons, α = 0.05)**; output: I 44.10 (n=2), II 42.10 (n=2), III 41.10 (n=2).
  - output I vs II: +2.00 points [95% CI +2.00, +2.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - output II vs III: +1.00 points [95% CI +1.00, +1.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
- VI-III: “(III) Across all three series, increasing the number of intermediate points consistently improves the performance of the case of “Close-to-Central-Layer”.” — ours (mIoU): **contradicted (Holm-corrected over 2 comparisons, α = 0.05)**; central: I 43.10 (n=2), II 43.60 (n=2), III 43.30 (n=2).
  - central II vs I: +0.50 points [95% CI +0.50, +0.50], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
  - central III vs II: -0.30 points [95% CI -0.30, -0.30], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: contradicted

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
% VI-I (mIoU): supported; I: input 45.10 (n=2), central 43.10 (n=2), output 44.10 (n=2); II: input 46.10 (n=2), central 43.60 (n=2), output 42.10 (n=2); III: input 47.10 (n=2), central 43.30 (n=2), output 41.10 (n=2); supported (Holm-corrected over 6 comparisons, α = 0.05); I input vs central: +2.00 points [95% CI +2.00, +2.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; I input vs output: +1.00 points [95% CI +1.00, +1.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; II input vs central: +2.50 points [95% CI +2.50, +2.50], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; II input vs output: +4.00 points [95% CI +4.00, +4.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; III input vs central: +3.80 points [95% CI +3.80, +3.80], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; III input vs output: +6.00 points [95% CI +6.00, +6.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
% VI-II (mIoU): supported; output: I 44.10 (n=2), II 42.10 (n=2), III 41.10 (n=2); supported (Holm-corrected over 2 comparisons, α = 0.05); output I vs II: +2.00 points [95% CI +2.00, +2.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; output II vs III: +1.00 points [95% CI +1.00, +1.00], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported
% VI-III (mIoU): contradicted; central: I 43.10 (n=2), II 43.60 (n=2), III 43.30 (n=2); contradicted (Holm-corrected over 2 comparisons, α = 0.05); central II vs I: +0.50 points [95% CI +0.50, +0.50], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: supported; central III vs II: -0.30 points [95% CI -0.30, -0.30], p < 0.001, Holm-adjusted p < 0.001 (paired t), n = 2/2: contradicted
"""



@pytest.mark.parametrize("which", ["iv", "paper"])
def test_table_iv_in_an_80_column_terminal_cuts_no_figure_and_no_verdict(report_db, which):
    import io

    from rich.console import Console

    url, _ = report_db
    t = report.table_iv(db=url) if which == "iv" else report.paper_table()
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(report.rich_table(t))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any("\u2026" in line for line in lines)
    gains = t.frame.dropna(subset=["gain_pts"]) if which == "paper" else t.frame[t.frame["test"].astype(bool)]
    assert len(gains) > 0
    for c in gains.itertuples():  # each gain and its interval whole, on one line
        text = (f"[{tables.fmt_signed(c.gain_low)}, {tables.fmt_signed(c.gain_high)}]" if which == "iv"
                else tables.fmt_signed(c.gain_pts))
        assert any(text in line for line in lines), text
    if which == "iv":
        verdicts = set(t.frame["verdict"].dropna()) - {""}
        assert {stats.SUPPORTED, stats.NO_SPREAD} <= verdicts
        tokens = {w for line in lines for w in line.split()}
        assert all(w in tokens for v in verdicts for w in v.split())  # wrapped at spaces at most
        rows = [line.split() for line in lines if line.split()[:1] == ["verdict"]]
        assert rows and all(len(r) == 5 for r in rows if set(r[1:]) <= {stats.SUPPORTED, "\u2013"})
