"""The paper's Table IV and findings, as embedded in report/paper.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imacsr_cli.report import paper

PAPER_TXT = Path(__file__).resolve().parents[3] / "shared" / "paper" / "imacsr-paper.txt"


def test_table_iv_has_every_cell_of_the_paper():
    assert len(paper.TABLE_IV) == 3 * 2 * 3 * 4
    assert paper.table_iv_value("deeplabv3plus", "conventional", "cityscapes", "mIoU") == 43.76
    assert paper.table_iv_value("deeplabv3plus", "imacsr", "cityscapes", "mPrecision") == 59.64
    assert paper.table_iv_value("seaformer", "imacsr", "synthiasf", "mIoU") == 24.20
    assert paper.table_iv_value("topformer", "imacsr", "synthiasf", "mRecall") == 33.20
    assert paper.table_iv_value("topformer", "conventional", "camvid", "mF1") == 70.22
    assert paper.table_iv_value("deeplabv3plus", "imacsr", "synthetic", "mIoU") is None
    frame = paper.table_iv_frame()
    assert list(frame.columns) == ["model", "method", "dataset", "metric", "value", "source"]
    assert frame["source"].str.contains("Table IV").all()


@pytest.mark.parametrize("key", sorted(paper.STATED_GAINS))
def test_gain_formula_reproduces_the_gains_the_text_states(key):
    model, dataset, metric = key
    ours = paper.relative_gain(paper.TABLE_IV[(model, "imacsr", dataset, metric)],
                               paper.TABLE_IV[(model, "conventional", dataset, metric)])
    assert round(ours, 2) == paper.STATED_GAINS[key]


@pytest.mark.skipif(not PAPER_TXT.exists(), reason="the paper's text is not in this checkout")
def test_embedded_text_is_verbatim_from_the_paper():
    text = PAPER_TXT.read_text(encoding="utf-8")
    assert paper._TABLE_IV_TEXT in text
    lines = text.splitlines()
    assert lines[paper.TABLE_IV_SOURCE.line - 1] == paper.TABLE_IV_SOURCE.quote
    flat = re.sub(r"\s+", " ", text)
    for f in paper.FINDINGS:
        assert f.source.quote in flat, f.id
        assert f.source.quote[:30] in lines[f.source.line - 1], f.id
