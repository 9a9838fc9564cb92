"""TopFormer: parameter counts, output shapes, intermediate points (real hooks), backbone weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

from imacsr_cli.errors import SpecError
from imacsr_cli.models import registry
from imacsr_cli.spec.points import select_indices
from imacsr_cli.spec.runspec import RunSpec

VARIANTS = ("tiny", "small", "base")

# Exact counts of this implementation; they equal the official hustvl/TopFormer model (backbone +
# SimpleHead) instantiated with the ADE20K configs.
PARAMS = {
    ("tiny", 150): 1_389_654,
    ("tiny", 19): 1_372_755,
    ("small", 150): 3_034_662,
    ("small", 19): 3_009_379,
    ("base", 150): 5_062_646,
    ("base", 19): 5_028_979,
}
# The spec's figures for the official code (shared/specs/models.md §2.8).
OFFICIAL = {
    ("tiny", 150): 1.39e6,
    ("tiny", 19): 1.37e6,
    ("small", 150): 3.03e6,
    ("small", 19): 3.01e6,
    ("base", 150): 5.06e6,
    ("base", 19): 5.03e6,
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these inputs are tiny, and on a shared 2-core machine two threads
    spinning against other processes make the tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(variant: str, num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return registry.build("topformer", variant, num_classes)


def capture_points(model: torch.nn.Module, points: list[registry.Point], x: torch.Tensor) -> dict[str, object]:
    """Forward `x` with a hook on every point's module; returns point name → captured output."""
    captured: dict[str, object] = {}
    handles = [
        model.get_submodule(p.module).register_forward_hook(
            lambda _m, _a, out, name=p.name: captured.__setitem__(name, out)
        )
        for p in points
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def test_registered() -> None:
    entry = registry.get("topformer")
    assert entry.variants == VARIANTS
    assert entry.default_variant == "tiny"
    assert registry.check_variant(entry, "") == "tiny"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("num_classes", [150, 19])
def test_parameter_count(variant: str, num_classes: int) -> None:
    n = registry.count_parameters(build(variant, num_classes))
    assert n == PARAMS[variant, num_classes]
    assert abs(n - OFFICIAL[variant, num_classes]) / OFFICIAL[variant, num_classes] < 0.01


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (100, 150), (97, 131)])
def test_logits_at_one_eighth(size: tuple[int, int]) -> None:
    model = build("tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, math.ceil(size[0] / 8), math.ceil(size[1] / 8))


def test_train_mode_backward_on_odd_size() -> None:
    model = build("base", 7).train()
    out = model(torch.randn(2, 3, 100, 150))
    assert out.shape == (2, 7, 13, 19)
    out.mean().backward()
    assert model.backbone.tpm.stem[0].c.weight.grad is not None


def test_points_metadata_without_building() -> None:
    pts = registry.points("topformer", "tiny")
    names = [p.name for p in pts]
    assert names == (
        ["stem"] + [f"tpm.{i}" for i in range(1, 10)] + [f"trans.{i}" for i in range(1, 5)]
        + ["sim1", "sim2", "sim3", "head"]
    )  # fmt: skip
    assert [(p.channels, p.stride) for p in pts if p.name.startswith("trans")] == [(208, 64)] * 4
    assert [(p.channels, p.stride) for p in pts[-4:]] == [(128, 8), (128, 16), (128, 32), (128, 8)]
    for variant in VARIANTS:
        pts = registry.points("topformer", variant)
        assert len({p.name for p in pts}) == len(pts)
        assert len(pts) == (18 if variant == "tiny" else 19)


@pytest.mark.parametrize("variant", VARIANTS)
def test_points_hooks_match_metadata(variant: str) -> None:
    model = build(variant).train()
    pts = registry.points("topformer", variant)
    captured = capture_points(model, pts, torch.randn(2, 3, 128, 128))
    for p in pts:
        out = captured[p.name]
        assert isinstance(out, torch.Tensor), p.name
        assert out.shape == (2, p.channels, 128 // p.stride, 128 // p.stride), p.name
    # Every point is on the graph of the backbone: an adapter loss there trains the stem.
    sum(captured[p.name].float().pow(2).mean() for p in pts).backward()
    assert model.backbone.tpm.stem[0].c.weight.grad.abs().sum() > 0


def test_points_spatial_size_is_ceil_on_odd_input() -> None:
    pts = registry.points("topformer", "tiny")
    captured = capture_points(build("tiny").eval(), pts, torch.randn(1, 3, 97, 131))
    for p in pts:
        assert captured[p.name].shape[-2:] == (math.ceil(97 / p.stride), math.ceil(131 / p.stride)), p.name


@pytest.mark.parametrize("position", ["input", "central", "output"])
def test_every_selection_of_three_points_captures(position: str) -> None:
    pts = registry.points("topformer", "tiny")
    for spacing in (1, 3, 8):
        chosen = [pts[i] for i in select_indices(len(pts), 3, position, spacing)]
        captured = capture_points(build("tiny").eval(), chosen, torch.randn(1, 3, 64, 64))
        assert [captured[p.name].shape[1] for p in chosen] == [p.channels for p in chosen]


def test_weights_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(SpecError) as err:
        registry.build("topformer", "tiny", 19, str(path))
    assert str(err.value) == f"key 'model.weights': file not found: {path}"


def test_weights_load_backbone_keys(tmp_path) -> None:
    source = build("tiny", 150, seed=1)
    # A full segmentation checkpoint as mmseg saves it: nested, prefixed, with a head to ignore.
    state = {f"backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    state["decode_head.conv_seg.weight"] = torch.zeros(150, 128, 1, 1)
    path = tmp_path / "topformer_tiny.pth"
    torch.save({"state_dict": state}, path)
    model = registry.build("topformer", "tiny", 19, str(path))
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_weights_that_match_nothing_or_another_variant(tmp_path) -> None:
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(SpecError, match="no tensor"):
        registry.build("topformer", "tiny", 19, str(unrelated))
    other = tmp_path / "base.pth"
    torch.save(build("base").backbone.state_dict(), other)
    with pytest.raises(SpecError, match="another variant"):
        registry.build("topformer", "tiny", 19, str(other))


def test_one_epoch_imacsr_run_on_synthetic_data(tmp_path) -> None:
    """The issue's acceptance run: 1 CPU epoch of iMacSR with M = 3 through the trainer's Python API."""
    from imacsr_cli.train import loop  # the trainer, not the models, depends on the rest of the package

    spec = {
        "model": {"name": "topformer", "variant": "tiny"},
        "data": {"name": "synthetic", "train_size": [64, 64], "eval_size": [64, 64], "num_train": 4, "num_val": 2},
        "points": {"count": 3, "position": "input", "spacing": 1},
        "train": {"epochs": 1, "batch_size": 2},
    }
    (tmp_path / "spec.json").write_text(json.dumps(RunSpec.from_dict(spec).to_dict()))
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        assert loop.run(tmp_path) == 0, (tmp_path / "train.log").read_text()
    finally:
        torch.use_deterministic_algorithms(deterministic)  # the trainer sets it for its process
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["spec"]["points"]["names"]) == 3
    assert 0.0 <= result["metrics"]["dataset"]["mIoU"] <= 1.0
