"""Fused convolution + ReLU (+ residual) for CPU inference equals the unfused operators bit for
bit, runs only where it applies, and `MODEL.CHANNELS_LAST` converts only the layout."""

from __future__ import annotations

import pytest
import torch
from rcnn_tiny import tiny_cfg
from torch.nn import functional as F

from masktron.backbones.resnet import BasicStem, ResNet
from masktron.engine import DefaultPredictor
from masktron.layers import Conv2d, FrozenBatchNorm2d
from masktron.layers.fused_conv import can_fuse
from masktron.models.channels_last import set_channels_last

needs_mkldnn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN"
)


def _conv(activation=None, stride=1, norm=True) -> Conv2d:
    torch.manual_seed(0)
    conv = Conv2d(8, 16, 3, stride=stride, padding=1, bias=not norm, activation=activation)
    if norm:
        conv.norm = FrozenBatchNorm2d(16)
        conv.norm.running_var.uniform_(0.5, 2.0)
        conv.norm.running_mean.normal_()
        conv.norm.weight.normal_()
    return conv.eval()


@needs_mkldnn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_conv_relu_and_residual_equal_unfused_bit_for_bit(dtype, channels_last):
    conv = _conv(stride=2).to(dtype)
    x = torch.randn(2, 8, 13, 17).to(dtype)
    residual = torch.randn(2, 16, 7, 9).to(dtype)
    if channels_last:
        set_channels_last(conv)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():  # autograd on: the plain operators
        plain = F.relu_(conv(x))
        plain_sum = F.relu_(conv(x) + residual)
    with torch.inference_mode():
        assert can_fuse(conv, x, conv.weight)
        fused = conv.forward_relu(x)
        fused_sum = conv.forward_relu(x, residual)
    assert torch.equal(fused, plain.detach())
    assert torch.equal(fused_sum, plain_sum.detach())
    assert fused.dtype == dtype


@needs_mkldnn
def test_conv_with_relu_activation_fuses_in_forward_with_the_same_outputs():
    conv = _conv(activation=F.relu, norm=False)
    x = torch.randn(3, 8, 10, 10)
    expected = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
    with torch.no_grad():
        assert torch.equal(conv(x), expected)


def test_fusion_stays_off_with_autograd_tracing_or_other_dtypes():
    conv = _conv()
    x = torch.randn(1, 8, 6, 6)
    assert not can_fuse(conv, x, conv.weight)  # grad enabled: training keeps plain ops
    with torch.no_grad():
        assert not can_fuse(conv, x.double(), conv.weight.double())
        assert not can_fuse(conv, x[:0], conv.weight)  # no RoIs: an empty batch
    # Traced graphs keep portable operators (exports and torch.compile likewise).
    with torch.no_grad(), pytest.warns(FutureWarning):
        traced = torch.jit.trace(_ConvRelu(conv), x)
    assert "mkldnn" not in str(traced.graph)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), conv.forward_relu(x))


class _ConvRelu(torch.nn.Module):
    def __init__(self, conv: Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv.forward_relu(x)


def test_unfolded_norms_keep_their_own_pass():
    conv = Conv2d(4, 8, 1, bias=False, norm=torch.nn.GroupNorm(2, 8))
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert torch.equal(conv.forward_relu(x), F.relu(conv.norm(F.conv2d(x, conv.weight))))


def test_resnet_blocks_give_the_same_features_fused():
    torch.manual_seed(1)
    net = ResNet(
        BasicStem(norm="FrozenBN"),
        ResNet.make_default_stages(18, norm="FrozenBN")[:2],
        out_features=["res2", "res3"],
    ).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.enable_grad():
        plain = net(x)
    with torch.inference_mode():
        fused = net(x)
    assert all(torch.equal(fused[k], plain[k].detach()) for k in plain)


def test_channels_last_switch_changes_the_layout_only():
    cfg = tiny_cfg("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    assert cfg.MODEL.CHANNELS_LAST  # on by default: every parity test passes with it
    cfg.MODEL.CHANNELS_LAST = False
    torch.manual_seed(0)
    plain = DefaultPredictor(cfg)
    cfg.MODEL.CHANNELS_LAST = True
    torch.manual_seed(0)
    nhwc = DefaultPredictor(cfg)
    stem = "backbone.bottom_up.stem.conv1.weight"
    plain_state, nhwc_state = plain.model.state_dict(), nhwc.model.state_dict()
    assert plain_state[stem].is_contiguous()
    assert nhwc_state[stem].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(plain_state[k], nhwc_state[k]) for k in plain_state)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 255
    with torch.inference_mode():
        a = plain.model.backbone(image)
        b = nhwc.model.backbone(image)
    assert b["p2"].is_contiguous(memory_format=torch.channels_last)
    for name in a:  # float32 rounding apart (random tiny weights amplify it downstream)
        assert (b[name] - a[name]).abs().max() <= 1e-5 * a[name].abs().max(), name


class _FakeOp:
    """A stand-in for the private oneDNN operator: fails, or returns wrong values."""

    def __init__(self, mode: str):
        self.mode, self.calls = mode, 0

    def __call__(self, x, weight, bias, padding, stride, dilation, groups, *attrs):
        self.calls += 1
        if self.mode == "fails":
            raise RuntimeError("unknown argument 'attr'")
        return F.relu(F.conv2d(x, weight, bias, stride, padding, dilation, groups)) + 1.0

    binary = __call__


@needs_mkldnn
@pytest.mark.parametrize("mode", ["fails", "differs"])
def test_a_fused_operator_that_fails_or_differs_is_switched_off(monkeypatch, caplog, mode):
    from masktron.layers import fused_conv

    fake = _FakeOp(mode)
    monkeypatch.setattr(fused_conv, "_OP", fake)
    monkeypatch.setattr(fused_conv, "_VERIFIED", False)
    conv = _conv(activation=F.relu, norm=False)
    x = torch.randn(2, 8, 13, 17)
    with torch.no_grad():
        expected = F.relu(F.conv2d(x, conv.weight, conv.bias, 1, 1))
        first, second = conv(x), conv(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert fake.calls == 1 and fused_conv._OP is None  # tried once, then off
    assert "oneDNN fused convolution disabled" in caplog.text


@needs_mkldnn
def test_the_first_fused_result_is_checked_once(monkeypatch):
    from masktron.layers import fused_conv

    monkeypatch.setattr(fused_conv, "_VERIFIED", False)
    conv = _conv(activation=F.relu, norm=False)
    with torch.no_grad():
        conv(torch.randn(2, 8, 13, 17))
    assert fused_conv._VERIFIED and fused_conv._OP is not None


def _bf16_block(seed: int = 0) -> tuple[Conv2d, torch.Tensor, torch.Tensor]:
    """A channels-last bf16 conv (BN folded at call time) with its input and a residual."""
    conv = _conv()
    conv.to(torch.bfloat16)
    set_channels_last(conv)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 13, 17, generator=gen).to(torch.bfloat16)
    residual = torch.randn(2, 16, 13, 17, generator=gen).to(torch.bfloat16)
    cl = torch.channels_last
    return conv, x.contiguous(memory_format=cl), residual.contiguous(memory_format=cl)


@needs_mkldnn
def test_bf16_residual_sum_rounds_once_when_asked(monkeypatch):
    from masktron.layers import fused_conv

    monkeypatch.setattr(fused_conv, "_VERIFIED_ROUND_ONCE", False)
    conv, x, residual = _bf16_block()
    with torch.inference_mode():
        twice = conv.forward_relu(x, residual)  # default: the plain operators' bits
        assert not fused_conv._VERIFIED_ROUND_ONCE
        conv.round_sum_once = True
        once = conv.forward_relu(x, residual)
        weight, bias, _ = conv._folded()
        exact = F.relu(
            F.conv2d(x.float(), weight.float(), bias.float(), padding=1) + residual.float()
        )
    assert fused_conv._VERIFIED_ROUND_ONCE and fused_conv._OP is not None  # fused, checked
    assert once.dtype == torch.bfloat16 and once.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(once, twice)  # one rounding less moves some elements ...
    error_once, error_twice = (once.float() - exact).abs(), (twice.float() - exact).abs()
    # ... to the float32 sum rounded once (a step at most, float32 summation order apart) ...
    assert (error_once <= torch.finfo(torch.bfloat16).eps * exact.abs() + 1e-5).all()
    assert error_once.max() < error_twice.max()  # ... closer to it than the plain operators


@needs_mkldnn
def test_a_wrong_bf16_fused_sum_is_switched_off(monkeypatch, caplog):
    from masktron.layers import fused_conv

    monkeypatch.setattr(fused_conv, "_OP", _FakeOp("differs"))
    monkeypatch.setattr(fused_conv, "_VERIFIED_ROUND_ONCE", False)
    conv, x, residual = _bf16_block()
    conv.round_sum_once = True
    with torch.inference_mode():
        out = conv.forward_relu(x, residual)
        weight, bias, _ = conv._folded()
        plain = F.relu_(F.conv2d(x, weight, bias, padding=1) + residual)
    assert torch.equal(out, plain)
    assert fused_conv._OP is None and "oneDNN fused convolution disabled" in caplog.text
