"""Fig. 3 and Fig. 4: the data behind the plots, the axes, the files; the findings checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imacsr_cli import report
from imacsr_cli.report import figures
from reportdb import BASELINE, FIG3, FIG4, spec


def _means(fd, metric="mIoU"):
    d = fd.data[fd.data["metric"] == metric].sort_values(fd.x)
    return dict(zip(d[fd.x], d["mean"]))


def test_fig3_data_baseline_and_finding(report_db):
    url, _ = report_db
    [fd] = report.figure_3(db=url, grid="fig3")
    assert (fd.name, fd.x, fd.model, fd.dataset) == ("fig3", "num_points", "deeplabv3plus", "synthetic")
    assert _means(fd) == pytest.approx({n: 100 * v + 0.1 for n, v in FIG3.items()})
    assert (fd.data["n"] == 2).all() and fd.data["std"].round(6).eq(round(0.2 / math.sqrt(2), 6)).all()
    base = fd.baseline.set_index("metric").loc["mIoU"]
    assert (base["mean"], base["n"]) == (pytest.approx(100 * BASELINE + 0.1), 2)
    assert fd.findings.iloc[0]["verdict"] == "supported"
    assert fd.findings.iloc[0]["ours"] == "1: 45.10 (n=2), 2: 46.10 (n=2), 3: 47.10 (n=2), 4: 45.60 (n=2), 5: 44.10 (n=2)"
    assert fd.findings.iloc[0]["statistics"].startswith("supported (Holm-corrected over 6 comparisons")
    assert fd.seeds() == [0, 1] and fd.title() == "Fig. 3: DeepLabv3+ on Synthetic \u00b7 grid fig3 \u00b7 seeds 0, 1"


def test_fig4_finds_its_baseline_by_spec_when_no_conventional_run_is_labelled(report_db):
    url, _ = report_db
    [fd] = report.figure_4(db=url)  # every grid: fig4's runs, fig3's conventional runs as reference
    assert _means(fd) == pytest.approx({s: 100 * v + 0.1 for s, v in FIG4.items()})
    assert fd.baseline.set_index("metric").loc["mIoU", "mean"] == pytest.approx(100 * BASELINE + 0.1)
    assert fd.findings.iloc[0]["verdict"] == "supported"
    [alone] = report.figure_4(db=url, grid="fig4")  # the grid has no conventional run
    assert (alone.baseline["n"] == 0).all()
    assert any(n.startswith("No reference line: conventional DeepLabv3+/synthetic: not in grid fig4")
               for n in alone.notes)


def test_draw_puts_the_data_on_the_axes(report_db):
    url, _ = report_db
    [fd] = report.figure_3(db=url, grid="fig3")
    fig = report.draw(fd)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(3.5) and h < 4.5
    head, body, foot = fig.subfigs
    axes = body.axes
    assert [a.get_title() for a in axes] == ["mIoU", "mF1", "mPrecision", "mRecall"]
    assert head._suptitle.get_text() == "Fig. 3: DeepLabv3+ on Synthetic \u00b7 grid fig3 \u00b7 seeds 0, 1"
    assert body._supxlabel.get_text() == "number of intermediate points"
    assert body._supylabel.get_text() == "% (dataset-level)"
    miou = axes[0]
    line = miou.lines[0]  # the errorbar's data line
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == pytest.approx([100 * v + 0.1 for v in FIG3.values()])
    # n per point, under each x (of the bottom panels: the x axis is shared)
    assert [t.get_text() for t in axes[2].get_xticklabels()] == [f"{n}\nn=2" for n in range(1, 6)]
    ref = [ln for ln in miou.lines if ln.get_linestyle() == "--"]
    base = 100 * BASELINE + 0.1
    assert len(ref) == 1 and ref[0].get_ydata()[0] == pytest.approx(base)
    assert ref[0].get_zorder() > line.get_zorder()  # drawn over a point it passes through
    band = [p for p in miou.patches if p.get_facecolor()[:3] == pytest.approx((0.85, 0.85, 0.85))]
    assert len(band) == 1
    std = 0.2 / math.sqrt(2)
    y0, height = band[0].get_y(), band[0].get_height()  # axhspan: a rectangle in data y
    assert (y0, y0 + height) == (pytest.approx(base - std), pytest.approx(base + std))
    lo, hi = miou.get_ylim()  # the band and every error bar are in view
    assert lo < base - std and hi > 100 * FIG3[3] + 0.1 + std
    assert [t.get_text() for t in head.legends[0].get_texts()] == [
        "iMacSR: mean \u00b1 std over seeds", "Conventional: mean (n=2)", "Conventional: \u00b1 std band (n=2)"]
    [verdict] = foot.texts
    assert verdict.get_text().replace("\n", " ") == (
        "Paper (Section IV-C): a moderate number of points is best: the best count is neither the smallest nor "
        "the largest. Ours (mIoU): supported (Holm-corrected over 6 comparisons, \u03b1 = 0.05).")


def test_the_y_axis_keeps_a_minimum_span():
    """A 0.015-point spread is not zoomed to the full height: the axis spans MIN_SPAN points."""
    data = pd.DataFrame([{"num_points": k, "metric": m, "mean": 40.0 + 0.005 * k, "std": 0.001, "n": 3,
                          "seeds": (0, 1, 2), "values": (40.0,) * 3} for k in (1, 2, 3) for m in figures.METRICS])
    base = pd.DataFrame([{"metric": m, "mean": 40.01, "std": 0.002, "n": 3, "seeds": (0, 1, 2)}
                         for m in figures.METRICS])
    fd = figures.FigureData(id="3", name="fig3", model="m", dataset="d", x="num_points", x_label="n",
                            convention="dataset", caption="", data=data, baseline=base,
                            findings=figures.check_figure("3", data, "mIoU"))
    lo, hi = figures.y_limits(fd, "mIoU")
    assert hi - lo == pytest.approx(figures.MIN_SPAN)
    assert lo < 40.005 and hi > 40.015
    fig = report.draw(fd)
    assert fig.subfigs[1].axes[0].get_ylim() == pytest.approx((lo, hi))
    # a wide spread: the range is the data's, padded by 10%
    wide = fd.data.assign(std=2.0)
    fd2 = figures.FigureData(**{**fd.__dict__, "data": wide})
    lo, hi = figures.y_limits(fd2, "mIoU")
    span = (40.015 + 2.0) - (40.005 - 2.0)
    assert (lo, hi) == (pytest.approx(40.005 - 2.0 - 0.1 * span), pytest.approx(40.015 + 2.0 + 0.1 * span))


def test_save_writes_png_pdf_and_the_data(report_db, tmp_path):
    import matplotlib.image

    url, _ = report_db
    [fd] = report.figure_4(db=url, grid="fig4")
    paths = report.save_figure(fd, tmp_path)
    assert [p.name for p in paths] == ["fig4.png", "fig4.pdf", "fig4.csv"]
    assert paths[1].read_bytes().startswith(b"%PDF")
    img = matplotlib.image.imread(paths[0])
    assert img.shape[1] == pytest.approx(3.5 * 300, abs=2)  # column width at 300 dpi
    data = pd.read_csv(paths[2])
    assert list(data["spacing"].dropna().astype(int).unique()) == [1, 2, 3]
    assert set(data["series"]) == {"iMacSR", "Conventional"}


def test_missing_points_are_marked_not_zero(filler):
    url, fill = filler
    for n in (1, 2, 3):
        fill.add("g", spec(count=n), {"figure": "3"}, v=0.4 + n / 100)
    fill.add("g", spec(count=4), {"figure": "3"}, state="queued")
    fill.add("g", spec(count=5), {"figure": "3"}, state="failed", reason="nonfinite")
    [fd] = report.figure_3(db=url)
    d = fd.data[fd.data["metric"] == "mIoU"].set_index("num_points")
    assert list(d["missing"].fillna("")) == ["", "", "", "1 queued", "1 failed: nonfinite"]
    assert "num_points = 4: 1 queued." in fd.notes
    # one seed per count, and 4 and 5 missing: the words every table and figure use for it
    assert fd.findings.iloc[0]["verdict"] == "no spread yet: run \u2265 2 seeds"
    fig = report.draw(fd)
    marks = [ln for ln in fig.subfigs[1].axes[0].lines if ln.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [4, 5]
    assert (fd.baseline["n"] == 0).all()


def _fig_data(fig: str, means: dict, spread: float = 0.1, seeds: int = 3) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(1)
    x = figures.SPECS[fig][0]
    rows = []
    for k, v in means.items():
        values = tuple(float(y) for y in v + spread * rng.standard_normal(seeds))
        rows.append({x: k, "metric": "mIoU", "mean": sum(values) / seeds, "std": 0.1, "n": seeds,
                     "values": values, "seeds": tuple(range(seeds))})
    return pd.DataFrame(rows)


def test_figure_checks_on_hand_made_data():
    def verdict(fig, means, **kw):
        return figures.check_figure(fig, _fig_data(fig, means, **kw), "mIoU").iloc[0]["verdict"]

    assert verdict("3", {1: 40, 2: 42, 3: 41, 4: 39.5, 5: 38}) == "supported"  # 2 and 3 beat 1 and 5
    assert verdict("3", {1: 40, 2: 41, 3: 42, 4: 43, 5: 44}) == "contradicted"  # 5 beats every inner count
    assert verdict("3", {1: 44, 2: 42, 3: 41, 4: 40, 5: 39}) == "contradicted"  # 1 beats every inner count
    assert verdict("3", {1: 40, 2: 42, 3: 41}) == "supported"  # on the counts measured: 2 beats 1 and 3
    f = figures.check_figure("3", _fig_data("3", {1: 40, 2: 42, 3: 41}), "mIoU").iloc[0]
    assert f["statistics"].endswith("; checked on the points measured (1, 2, 3); not measured: 4, 5")
    assert verdict("3", {1: 44, 2: 43}) == "inconclusive"  # two counts cannot have a moderate one
    assert verdict("3", {1: 40, 2: 42, 3: 41, 4: 39, 5: 38}, spread=3.0) == "inconclusive"
    assert verdict("4", {1: 40, 2: 42, 3: 41}) == "supported"
    assert verdict("4", {1: 40, 2: 40.05, 3: 39}) == "inconclusive"  # 0.05 points at a spread of 0.1
    assert verdict("4", {1: 43, 2: 42, 3: 41}) == "contradicted"
    assert verdict("4", {1: 43, 3: 41}) == "inconclusive"  # spacing 2 not measured
    assert verdict("4", {1: 43, 2: 42}) == "contradicted"  # 1 beats 2, whatever 3 does
    assert verdict("4", {1: 40, 2: 42, 3: 41}, seeds=1) == "no spread yet: run \u2265 2 seeds"
    f = figures.check_figure("4", _fig_data("4", {1: 40, 2: 40.05, 3: 39}), "mIoU").iloc[0]
    assert "could have detected" in f["statistics"] and "Holm-corrected over 2 comparisons" in f["statistics"]
