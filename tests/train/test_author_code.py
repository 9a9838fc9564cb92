"""The author's-code switch: CE on softmax outputs (double softmax) and an extra void logit, against
hand computations; run ids unchanged for the defaults and new for the options."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from imacsr_cli.models.registry import Point
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.spec.grid import GridSpec
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train.imacsr import IMacSR, cross_entropy
from imacsr_cli.train.loop import run
from imacsr_cli.train.metrics import ConfusionMatrix, dataset_metrics

TINY = {
    "model": {"name": "deeplabv3plus"},
    "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 4, "num_val": 2},
    "train": {"epochs": 2, "batch_size": 2},
    "points": {"count": 2, "position": "input", "spacing": 1},
}


def test_double_softmax_cross_entropy_by_hand():
    # Pixel logits (ln 3, 0): softmax p = (3/4, 1/4). The author's code feeds p to CrossEntropyLoss,
    # which takes a second softmax: -log(e^{3/4} / (e^{3/4} + e^{1/4})) = log(1 + e^{-1/2}) for label 0,
    # log(1 + e^{1/2}) for label 1. The second pixel is void (ignored).
    logits = torch.tensor([[[[math.log(3.0), 1.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    for label, expected in ((0, math.log1p(math.exp(-0.5))), (1, math.log1p(math.exp(0.5)))):
        target = torch.tensor([[[label, 255]]])
        assert cross_entropy(logits, target, 255, "softmax").item() == pytest.approx(expected, abs=1e-6)
    # On logits (the default) it is the ordinary CE: -ln 3/4.
    assert cross_entropy(logits, torch.tensor([[[0, 255]]]), 255).item() == pytest.approx(-math.log(0.75), abs=1e-6)


def test_double_softmax_squashes_the_gradient():
    # A confidently wrong pixel: CE on logits gives gradient ≈ 1 on the true logit; on softmax outputs
    # the loss is bounded by log(1 + e) and the gradient is far smaller (specs/method.md §1).
    z = torch.tensor([[[[-4.0]], [[4.0]]]], requires_grad=True)
    t = torch.tensor([[[0]]])
    g_logits = torch.autograd.grad(cross_entropy(z, t, 255), z)[0].abs().sum().item()
    g_soft = torch.autograd.grad(cross_entropy(z, t, 255, "softmax"), z)[0].abs().sum().item()
    assert cross_entropy(z, t, 255, "softmax").item() < math.log1p(math.e)
    assert g_soft < 0.05 * g_logits


class _Tiny(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, k, 1)

    def forward(self, x):
        return self.head(torch.relu(self.a(x)))


def test_softmax_ce_applies_to_the_output_and_every_mi_term():
    torch.manual_seed(1)
    k = 3
    model = _Tiny(k)
    trainee = IMacSR(model, [Point("a", "a", 4, 1)], k, MethodSpec(alpha=0.4, lam=0.05, ce_input="softmax")).train()
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, k, (2, 4, 4))
    total, terms = trainee.loss(trainee(x), y)
    ce = nn.CrossEntropyLoss(ignore_index=255)
    za = model.a(x)
    out = ce(torch.softmax(model(x), 1), y)
    mi = ce(torch.softmax(trainee.adapters[0](za), 1), y)
    p = torch.softmax(za, 1)
    ne = (p * torch.log(p)).sum(1).mean()
    assert terms["ce"].item() == pytest.approx(out.item(), abs=1e-6)
    assert terms["mi/a"].item() == pytest.approx(mi.item(), abs=1e-6)
    assert total.item() == pytest.approx((out + 0.4 * mi + 0.05 * ne).item(), abs=1e-6)


def test_void_predictions_are_misses_of_their_class_and_no_false_positive():
    # K = 2 with a void column. Pixels (truth → prediction): 0→0, 1→void, 1→1, void→0 (ignored).
    cm = ConfusionMatrix(2, 255, void_column=True)
    cm.update(torch.tensor([[0, 1, 1, 255]]), torch.tensor([[0, 2, 1, 0]]))
    assert cm.mat.tolist() == [[1, 0, 0], [0, 1, 1]]
    m = cm.compute()["dataset"]
    # class 0: TP 1, FP 0, FN 0 → IoU 1; class 1: TP 1, FP 0, FN 1 → IoU 1/2, recall 1/2, precision 1.
    assert m["per_class"]["iou"] == [1.0, 0.5] and m["mIoU"] == 0.75
    assert m["per_class"]["precision"] == [1.0, 1.0] and m["per_class"]["recall"] == [1.0, 0.5]
    assert cm.compute()["paper"]["mIoU"] == 0.75  # one image: eq. (13) agrees
    # Without a void logit nothing changes: a square matrix has no extra column.
    sq = ConfusionMatrix(2, 255)
    sq.update(torch.tensor([[0, 1, 1, 255]]), torch.tensor([[0, 0, 1, 0]]))
    assert sq.mat.tolist() == [[1, 0], [1, 1]]


def test_default_runs_keep_their_ids_and_the_options_get_new_ones():
    # Golden ids from before the keys existed (main at 8a6997e).
    assert resolve(RunSpec.from_dict(TINY)).run_id == "595872eadf51"
    assert resolve(RunSpec.from_dict({})).run_id == "5ac2ec238afd"
    assert resolve(RunSpec.from_dict({"method": {"name": "conventional"}})).run_id == "6f157fc6e1cb"
    explicit = {**TINY, "method": {"ce_input": "logits"}, "data": {**TINY["data"], "void_logit": False}}
    assert resolve(RunSpec.from_dict(explicit)).run_id == "595872eadf51"  # the defaults written out: same run
    ids = set()
    for method, data in (({"ce_input": "softmax"}, {}), ({}, {"void_logit": True}),
                         ({"ce_input": "softmax"}, {"void_logit": True})):
        spec = {**TINY, "method": method, "data": {**TINY["data"], **data}}
        ids.add(resolve(RunSpec.from_dict(spec)).run_id)
    assert len(ids) == 3 and "595872eadf51" not in ids
    # A conventional run keeps its CE variant (it is the baseline the ablation is about).
    conv = resolve(RunSpec.from_dict({"method": {"name": "conventional", "ce_input": "softmax"}}))
    assert conv.method.ce_input == "softmax" and conv.run_id != "6f157fc6e1cb"


def test_bad_values_are_one_line_spec_errors():
    from imacsr_cli.errors import SpecError

    with pytest.raises(SpecError, match=r"key 'method.ce_input': expected one of 'logits', 'softmax', got str 'probs'"):
        RunSpec.from_dict({"method": {"ce_input": "probs"}})
    with pytest.raises(SpecError, match=r"key 'data.void_logit': expected true or false, got int 1"):
        RunSpec.from_dict({"data": {"void_logit": 1}})


def test_a_run_with_the_authors_code_trains_k_plus_one_logits(tmp_path):
    spec = {**TINY, "method": {"ce_input": "softmax"}, "data": {**TINY["data"], "void_logit": True}}
    d = tmp_path / "run"
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(spec))
    assert run(d) == 0
    result = json.loads((d / "result.json").read_text())
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (11, 12) and cm.sum() == 2 * 32 * 32  # 11 classes, predictions 11 + void
    again = dataset_metrics(cm)
    assert result["metrics"]["dataset"]["mIoU"] == pytest.approx(again["mIoU"])
    assert len(result["metrics"]["dataset"]["per_class"]["iou"]) == 11  # void is never a class
    state = torch.load(d / "checkpoint.pt", weights_only=True)["trainee"]
    heads = [v for k, v in state.items() if k.startswith("adapters.") and k.endswith("weight")]
    assert heads and all(w.shape[0] == 12 for w in heads)  # adapters predict the void logit too
    assert result["spec"]["method"]["ce_input"] == "softmax" and result["spec"]["data"]["void_logit"] is True


def test_the_author_code_grid_has_four_codes_of_both_methods():
    grid = GridSpec.find("ablations/author_code.toml")
    rows = grid.expand()
    assert len(rows) == 4 * 2 * 3 and len({r.run_id for r in rows}) == 24
    codes = {}
    for r in rows:
        labels = r.labels if isinstance(r.labels, dict) else r.labels[0]
        codes.setdefault(labels["code"], set()).add((r.spec.method.name, r.spec.method.ce_input, r.spec.data.void_logit))
    assert codes == {
        "ours": {("conventional", "logits", False), ("imacsr", "logits", False)},
        "softmax": {("conventional", "softmax", False), ("imacsr", "softmax", False)},
        "void": {("conventional", "logits", True), ("imacsr", "logits", True)},
        "author": {("conventional", "softmax", True), ("imacsr", "softmax", True)},
    }
    # "ours" is the same run as the spacing ablation's M=3, spacing 2 run: trained once.
    spacing = {r.run_id for r in GridSpec.find("ablations/spacing.toml").expand()}
    ours = {r.run_id for r in rows if (r.labels if isinstance(r.labels, dict) else r.labels[0])["code"] == "ours"
            and r.spec.method.name == "imacsr"}
    assert ours <= spacing
