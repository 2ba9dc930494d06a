"""RegNet: the 4GF designs of the "dds" zoo have the paper's widths, depths and sizes, the
modules carry Detectron2's names, and the other stems and blocks run at their strides."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from masktron.backbones.regnet import (
    AnyNet,
    RegNet,
    ResBasicBlock,
    ResBottleneckBlock,
    ResStem,
    SimpleStem,
    VanillaBlock,
)
from masktron.layers import FrozenBatchNorm2d

# pycls's RegNetX-4.0GF / RegNetY-4.0GF (Radosavovic et al. 2020): 22.1M / 20.6M parameters
# with the 1000-class ImageNet head, which the backbone does not have.
DESIGNS = {
    "X-4GF": (dict(depth=23, w_a=38.65, w_0=96, w_m=2.43, group_width=40), 22.1),
    "Y-4GF": (dict(depth=22, w_a=31.41, w_0=96, w_m=2.24, group_width=64, se_ratio=0.25), 20.6),
}
WIDTHS = {"X-4GF": [80, 240, 560, 1360], "Y-4GF": [128, 192, 512, 1088]}
DEPTHS = {"X-4GF": [2, 5, 14, 2], "Y-4GF": [2, 6, 12, 2]}


@pytest.mark.parametrize("name", DESIGNS)
def test_4gf_designs_have_the_papers_shape(name):
    params, published_millions = DESIGNS[name]
    with torch.device("meta"):  # shapes only
        net = RegNet(
            stem_class=SimpleStem,
            stem_width=32,
            block_class=ResBottleneckBlock,
            norm="BN",
            out_features=["s1", "s2", "s3", "s4"],
            **params,
        )
    shapes = net.output_shape()
    assert [shapes[f"s{i}"].channels for i in range(1, 5)] == WIDTHS[name]
    assert [shapes[f"s{i}"].stride for i in range(1, 5)] == [4, 8, 16, 32]
    assert [len(list(getattr(net, f"s{i}").children())) for i in range(1, 5)] == DEPTHS[name]
    head = WIDTHS[name][-1] * 1000 + 1000  # the classifier the backbone leaves out
    total = sum(p.numel() for p in net.parameters()) + head
    assert total / 1e6 == pytest.approx(published_millions, abs=0.05)
    names = set(net.state_dict())
    assert {
        "stem.conv.weight",
        "stem.bn.running_var",
        "s1.b1.proj.weight",
        "s1.b1.bn.bias",
    } <= names
    assert {"s4.b2.f.a.weight", "s4.b2.f.b_bn.weight", "s4.b2.f.c.weight"} <= names
    assert ("s2.b1.f.se.f_ex.2.bias" in names) == (name == "Y-4GF")
    assert "s1.b2.proj.weight" not in names  # same width and stride: identity shortcut
    groups = net.s3.b1.f.b.groups  # bottleneck channels / group width
    assert groups == WIDTHS[name][2] // params["group_width"]


def test_other_stems_and_blocks_and_freezing():
    net = AnyNet(
        stem_class=ResStem,
        stem_width=8,
        block_class=ResBasicBlock,
        depths=[1, 2],
        widths=[8, 16],
        group_widths=[8, 8],
        strides=[1, 2],
        bottleneck_ratios=[1.0, 1.0],
        se_ratio=0.0,
        activation_class=nn.ReLU,
        freeze_at=2,
        out_features=["stem", "s1", "s2"],
    )
    out = net(torch.rand(2, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "stem": (2, 8, 8, 8),
        "s1": (2, 8, 8, 8),
        "s2": (2, 16, 4, 4),
    }
    assert {"stem.pool", "s1.b1.f.b_bn", "s2.b1.proj"} <= {n for n, _ in net.named_modules()}
    assert not any(p.requires_grad for p in [*net.stem.parameters(), *net.s1.parameters()])
    assert isinstance(net.stem.bn, FrozenBatchNorm2d) and isinstance(net.s2.b1.bn, nn.BatchNorm2d)
    vanilla = AnyNet(
        stem_class=SimpleStem,
        stem_width=4,
        block_class=VanillaBlock,
        depths=[1],
        widths=[6],
        group_widths=[1],
        strides=[2],
        bottleneck_ratios=[1.0],
        se_ratio=0.0,
        activation_class=nn.ReLU,
    )
    assert tuple(vanilla(torch.rand(1, 3, 16, 16))["s1"].shape) == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="unknown RegNet outputs"):
        AnyNet(
            stem_class=SimpleStem, stem_width=4, block_class=VanillaBlock, depths=[1],
            widths=[6], group_widths=[1], strides=[2], bottleneck_ratios=[1.0], se_ratio=0.0,
            activation_class=nn.ReLU, out_features=["s2"],
        )  # fmt: skip
