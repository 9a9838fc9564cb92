"""DeepLabv3+-R18: sizes, shapes, points and local ImageNet weights (never downloaded)."""

import pytest
import torch
from torchvision.models import resnet18

from imacsr_cli.errors import SpecError
from imacsr_cli.models import registry


@pytest.mark.parametrize("variant,classes,params", [("smp", 19, 12_333_923), ("smp", 150, 12_367_590),
                                                     ("paper", 19, 16_607_667)])
def test_parameter_counts(variant, classes, params):
    # specs/models.md §4.3: smp ≈12.33 M at 19 classes (12.37 M at 150), paper-style ≈16.61 M.
    assert registry.count_parameters(registry.build("deeplabv3plus", variant, classes)) == params


@pytest.mark.parametrize("h,w", [(64, 64), (97, 131)])
def test_logits_at_stride_4_for_any_input_size(h, w):
    model = registry.build("deeplabv3plus", "smp", 11).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out.shape == (1, 11, -(-h // 4), -(-w // 4))


def test_points_match_real_forward_hooks():
    model = registry.build("deeplabv3plus", "smp", 11).eval()
    seen = {}
    for p in registry.points("deeplabv3plus", "smp"):
        model.get_submodule(p.module).register_forward_hook(lambda m, i, o, p=p: seen.__setitem__(p.name, o.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 128))
    for p in registry.points("deeplabv3plus", "smp"):
        assert seen[p.name] == (1, p.channels, 128 // p.stride, 128 // p.stride), p.name


def test_local_imagenet_weights_load_into_the_backbone(tmp_path):
    torch.manual_seed(1)
    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = registry.build("deeplabv3plus", "smp", 19, str(path))
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone.stem[1].running_var, reference.bn1.running_var)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_missing_weights_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as err:
        registry.build("deeplabv3plus", "smp", 19, str(tmp_path / "nope.pth"))
    assert str(err.value) == f"key 'model.weights': file not found: {tmp_path / 'nope.pth'}"


def test_weights_of_another_network_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(SpecError, match="holds no ResNet-18 backbone weights"):
        registry.build("deeplabv3plus", "smp", 19, str(path))
