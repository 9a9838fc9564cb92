"""Checks shared by the TopFormer and SeaFormer tests: parameter counts, output shapes, intermediate
points (real hooks), backbone weights, one training epoch.

A test module subclasses ``SegModelChecks`` with the model's facts (name, variants, parameter counts,
where the stem conv is...) and adds the checks that only that model has (its point names, the layout
of its checkpoints). Parametrisation over the model's variants is ``pytest_generate_tests`` below.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from imacsr_cli.errors import SpecError
from imacsr_cli.models import registry
from imacsr_cli.spec.points import select_indices
from imacsr_cli.spec.runspec import RunSpec


def build(name: str, variant: str, num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return registry.build(name, variant, num_classes)


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


class SegModelChecks:
    """The checks every registered TopFormer-like model passes; subclasses set the facts below."""

    name: str  # registry name
    variants: tuple[str, ...]  # every variant, in registry order
    default_variant: str
    params: dict[tuple[str, int], int]  # exact parameter counts of this implementation
    official: dict[tuple[str, int], float]  # the spec's figures for the official code (within 1 %)
    stem_conv: str  # the first conv of the stem (its weight gets a gradient from every point)
    backward_variant: str  # the variant trained one step on an odd input size
    selection_variant: str  # the variant whose 3-point selections are all captured...
    selection_spacings: tuple[int, ...]  # ...at these spacings
    missing_weights_variant: str  # the variant built with a weights path that does not exist
    other_variant: str  # a variant whose checkpoint does not fit "tiny"

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """``variant`` of a check runs over every variant of the subclass's model."""
        if "variant" in metafunc.fixturenames:
            metafunc.parametrize("variant", self.variants)

    @pytest.fixture(autouse=True)
    def one_thread(self):
        """One intra-op thread: these inputs are tiny, and on a shared 2-core machine two threads
        spinning against other processes make the tests many times slower."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    def build(self, variant: str, num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
        return build(self.name, variant, num_classes, seed)

    def test_registered(self) -> None:
        entry = registry.get(self.name)
        assert entry.variants == self.variants
        assert entry.default_variant == self.default_variant
        assert registry.check_variant(entry, "") == self.default_variant

    @pytest.mark.parametrize("num_classes", [150, 19])
    def test_parameter_count(self, variant: str, num_classes: int) -> None:
        n = registry.count_parameters(self.build(variant, num_classes))
        assert n == self.params[variant, num_classes]
        assert abs(n - self.official[variant, num_classes]) / self.official[variant, num_classes] < 0.01

    @pytest.mark.parametrize("size", [(64, 64), (96, 160), (100, 150), (97, 131)])
    def test_logits_at_one_eighth(self, size: tuple[int, int]) -> None:
        model = self.build("tiny").eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, *size))
        assert out.shape == (2, 19, math.ceil(size[0] / 8), math.ceil(size[1] / 8))

    def test_train_mode_backward_on_odd_size(self) -> None:
        model = self.build(self.backward_variant, 7).train()
        out = model(torch.randn(2, 3, 100, 150))
        assert out.shape == (2, 7, 13, 19)
        out.mean().backward()
        assert model.get_submodule(self.stem_conv).weight.grad is not None

    def test_points_hooks_match_metadata(self, variant: str) -> None:
        model = self.build(variant).train()
        pts = registry.points(self.name, variant)
        captured = capture_points(model, pts, torch.randn(2, 3, 128, 128))
        for p in pts:
            out = captured[p.name]
            assert isinstance(out, torch.Tensor), p.name
            assert out.shape == (2, p.channels, 128 // p.stride, 128 // p.stride), p.name
        # Every point is on the graph of the backbone: an adapter loss there trains the stem.
        sum(captured[p.name].float().pow(2).mean() for p in pts).backward()
        assert model.get_submodule(self.stem_conv).weight.grad.abs().sum() > 0

    def test_points_spatial_size_is_ceil_on_odd_input(self) -> None:
        pts = registry.points(self.name, "tiny")
        captured = capture_points(self.build("tiny").eval(), pts, torch.randn(1, 3, 97, 131))
        for p in pts:
            assert captured[p.name].shape[-2:] == (math.ceil(97 / p.stride), math.ceil(131 / p.stride)), p.name

    @pytest.mark.parametrize("position", ["input", "central", "output"])
    def test_every_selection_of_three_points_captures(self, position: str) -> None:
        pts = registry.points(self.name, self.selection_variant)
        for spacing in self.selection_spacings:
            chosen = [pts[i] for i in select_indices(len(pts), 3, position, spacing)]
            captured = capture_points(self.build(self.selection_variant).eval(), chosen, torch.randn(1, 3, 64, 64))
            assert [captured[p.name].shape[1] for p in chosen] == [p.channels for p in chosen]

    def test_weights_missing_file(self, tmp_path) -> None:
        path = tmp_path / "nope.pth"
        with pytest.raises(SpecError) as err:
            registry.build(self.name, self.missing_weights_variant, 19, str(path))
        assert str(err.value) == f"key 'model.weights': file not found: {path}"

    def assert_backbone_loads(self, source: torch.nn.Module, path) -> None:
        """Building "tiny" with the checkpoint at ``path`` gives exactly ``source``'s backbone."""
        model = registry.build(self.name, "tiny", 19, str(path))
        for key, value in source.backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value), key

    def test_weights_that_match_nothing_or_another_variant(self, tmp_path) -> None:
        unrelated = tmp_path / "unrelated.pth"
        torch.save({"fc.weight": torch.zeros(3, 3)}, unrelated)
        with pytest.raises(SpecError, match="no tensor"):
            registry.build(self.name, "tiny", 19, str(unrelated))
        other = tmp_path / f"{self.other_variant}.pth"
        torch.save(self.build(self.other_variant).backbone.state_dict(), other)
        with pytest.raises(SpecError, match="another variant"):
            registry.build(self.name, "tiny", 19, str(other))

    def test_one_epoch_imacsr_run_on_synthetic_data(self, tmp_path) -> None:
        """The issue's acceptance run: 1 CPU epoch of iMacSR with M = 3 through the trainer's Python API."""
        from imacsr_cli.train import loop  # the trainer, not the models, depends on the rest of the package

        spec = {
            "model": {"name": self.name, "variant": "tiny"},
            "data": {"name": "synthetic", "train_size": [64, 64], "eval_size": [64, 64], "num_train": 4,
                     "num_val": 2},
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
