"""The paper's published results, as data, with where each comes from.

Table IV is the only table whose numbers the paper's text gives; it is embedded below verbatim (the
rows as the text extraction of the paper prints them, tab-separated) and parsed, so what we compare
against can be checked character for character against the source. Table VI and Figs. 3-4 are images
in the paper: only their qualitative findings (Section IV-C) are stated, and they are kept here as
findings that our numbers can be checked against (see tables.py / figures.py for the checks).

Values are in percent, as printed. The paper's metrics are its eq. (13): a per-image average.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from imacsr_cli import metric_names as mn

PAPER = (
    "W.-B. Kou, G. Zhu, Y. Jin, S. Wang, M. Tang, Y.-C. Wu, \"iMacSR: Intermediate Multi-Access "
    "Supervision and Regularization in Training Autonomous Driving Models\""
)
PAPER_FILE = "shared/paper/imacsr-paper.txt"  # the text extraction this module was copied from
PAPER_CONVENTION = "per-image average, eq. (13)"


@dataclass(frozen=True)
class Source:
    """Where a published number or statement comes from."""

    where: str  # "Table IV", "Section IV-C-2, Table VI"
    line: int  # line of PAPER_FILE where it starts
    quote: str = ""  # the caption or sentence, verbatim

    def cite(self) -> str:
        return f"{PAPER}, {self.where} ({PAPER_FILE}:{self.line})"


TABLE_IV_SOURCE = Source(
    where="Table IV",
    line=265,
    quote="TABLE IV: The quantitative performance comparison of iMacSR against conventional training "
    "method for all adopted models",
)

# Verbatim lines 269-274 of PAPER_FILE (header lines 267-268 give the column order below).
_TABLE_IV_TEXT = """\
DeepLabv3+\tConventional\t43.76\t50.40\t51.54\t50.77\t76.02\t82.43\t83.07\t82.46\t33.28\t37.27\t38.98\t36.45
\tiMacSR (Ours)\t47.78\t56.28\t59.64\t55.64\t76.13\t82.52\t83.09\t82.57\t34.28\t39.13\t42.74\t37.60
SeaFormer\tConventional\t27.40\t30.99\t30.55\t32.14\t50.69\t56.00\t55.40\t56.89\t24.74\t29.70\t32.68\t29.19
\tiMacSR (Ours)\t29.82\t34.19\t33.80\t35.45\t55.83\t62.39\t64.19\t62.54\t24.20\t29.23\t32.20\t29.00
TopFormer\tConventional\t32.76\t37.64\t36.92\t39.24\t63.10\t70.22\t71.88\t70.25\t28.37\t33.75\t36.97\t32.99
\tiMacSR (Ours)\t34.28\t39.96\t40.41\t40.60\t66.38\t74.50\t77.47\t73.60\t28.70\t34.04\t37.22\t33.20
"""

METRICS = mn.MAIN  # the paper's column order
DATASETS = ("cityscapes", "camvid", "synthiasf")  # the paper's column order (registry names)
MODELS = ("deeplabv3plus", "seaformer", "topformer")  # the paper's row order (registry names)
METHODS = ("conventional", "imacsr")

# Registry name -> the name the paper prints. Names not here are shown as they are.
MODEL_LABELS = {"deeplabv3plus": "DeepLabv3+", "seaformer": "SeaFormer", "topformer": "TopFormer"}
DATASET_LABELS = {"cityscapes": "Cityscapes", "camvid": "CamVid", "synthiasf": "SynthiaSF",
                  "synthetic": "Synthetic"}
METHOD_LABELS = {"conventional": "Conventional", "imacsr": "iMacSR"}

_PAPER_MODEL = {v: k for k, v in MODEL_LABELS.items()}
_PAPER_METHOD = {"Conventional": "conventional", "iMacSR (Ours)": "imacsr"}

# Relative gains the text states (Section IV-B-1), in percent: what our gain formula must reproduce.
STATED_GAINS = {
    ("deeplabv3plus", "cityscapes", "mIoU"): 9.19,
    ("deeplabv3plus", "cityscapes", "mF1"): 11.67,
    ("deeplabv3plus", "cityscapes", "mPrecision"): 15.72,
    ("deeplabv3plus", "cityscapes", "mRecall"): 9.59,
    ("deeplabv3plus", "camvid", "mIoU"): 0.14,
    ("deeplabv3plus", "synthiasf", "mIoU"): 3.00,
}


def model_label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def relative_gain(ours: float, baseline: float) -> float:
    """Relative gain in percent, as the paper computes it: (47.78 - 43.76) / 43.76 = 9.19%."""
    return (ours - baseline) / baseline * 100.0


def _parse_table_iv() -> dict[tuple[str, str, str, str], float]:
    out: dict[tuple[str, str, str, str], float] = {}
    model = ""
    for line in _TABLE_IV_TEXT.splitlines():
        cols = line.split("\t")
        model = _PAPER_MODEL[cols[0]] if cols[0] else model  # the iMacSR row leaves the model blank
        method = _PAPER_METHOD[cols[1]]
        values = [float(v) for v in cols[2:]]
        for i, value in enumerate(values):
            out[(model, method, DATASETS[i // 4], METRICS[i % 4])] = value
    return out


TABLE_IV: dict[tuple[str, str, str, str], float] = _parse_table_iv()
"""(model, method, dataset, metric) -> published value in percent."""


def table_iv_value(model: str, method: str, dataset: str, metric: str) -> float | None:
    """The published Table IV value, or None where the paper has none (e.g. the synthetic data)."""
    return TABLE_IV.get((model, method, dataset, metric))


def table_iv_frame() -> pd.DataFrame:
    """The paper's Table IV, long format: model, method, dataset, metric, value (%), source."""
    rows = [
        {"model": m, "method": me, "dataset": d, "metric": k, "value": v, "source": TABLE_IV_SOURCE.cite()}
        for (m, me, d, k), v in TABLE_IV.items()
    ]
    return pd.DataFrame(rows)


# ---- qualitative findings (Section IV-C): Table VI and Figs. 3-4 are images ----------------------


@dataclass(frozen=True)
class Finding:
    id: str  # "VI-I": table/figure and the paper's own numbering of the pattern
    about: str  # "table_vi", "fig3", "fig4"
    claim: str  # what a check tests, in our words
    source: Source


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "VI-I", "table_vi",
        "in every series, close-to-input beats central and close-to-output",
        Source("Section IV-C-2, Table VI", 317,
               "(I) For each of these three series, the case of \u201cClose-to-Input-Layer\u201d consistently "
               "outperforms cases of \u201cClose-to-Central-Layer\u201d and \u201cClose-to-Output-Layer\u201d."),
    ),
    Finding(
        "VI-II", "table_vi",
        "close-to-output gets worse from series I to II to III",
        Source("Section IV-C-2, Table VI", 317,
               "(II) Across all three series, as the number of intermediate points increases, the "
               "performance of the case of \u201cClose-to-Output-Layer\u201d progressively deteriorates."),
    ),
    Finding(
        "VI-III", "table_vi",
        "central gets better from series I to II to III",
        Source("Section IV-C-2, Table VI", 317,
               "(III) Across all three series, increasing the number of intermediate points consistently "
               "improves the performance of the case of \u201cClose-to-Central-Layer\u201d."),
    ),
    Finding(
        "Fig3", "fig3",
        "a moderate number of points is best: the best count is neither the smallest nor the largest",
        Source("Section IV-C-1, Fig. 3", 296,
               "cases with both smaller and larger numbers of intermediate points underperform compared "
               "to those with a moderate number."),
    ),
    Finding(
        "Fig4", "fig4",
        "a spacing of two bases is best among one, two and three",
        Source("Section IV-C-3, Fig. 4", 321,
               "the case with two-base distance achieves the best performance among aforementioned "
               "three cases."),
    ),
)


def findings(about: str) -> list[Finding]:
    return [f for f in FINDINGS if f.about == about]
