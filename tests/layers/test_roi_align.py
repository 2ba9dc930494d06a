"""RoIAlign on hand-computed grids, and the plain-PyTorch reference against torchvision."""

import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align

from masktron.layers import ROIAlign, roi_align_reference


def _ramp(h: int = 5, w: int = 5) -> torch.Tensor:
    """f(y, x) = x + 10 y at pixel (y, x): bilinear sampling reproduces it exactly inside."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (x + 10 * y).double()[None, None]  # (1, 1, H, W)


@pytest.mark.parametrize("impl", ["torchvision", "reference"])
def test_aligned_bins_are_centred_on_pixel_centres(impl):
    # aligned=True: continuous coordinate c is pixel c - 0.5. Box [1, 3] x [1, 3] in 2x2 bins has
    # bin centres at continuous 1.5, 2.5 -> pixels 1, 2, so the bins hold f at (1..2, 1..2).
    rois = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    fn = tv_roi_align if impl == "torchvision" else roi_align_reference
    out = fn(_ramp(), rois, (2, 2), 1.0, 0, True)
    assert torch.allclose(
        out[0, 0], torch.tensor([[11.0, 12.0], [21.0, 22.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize("impl", ["torchvision", "reference"])
def test_legacy_unaligned_bins_are_shifted_half_a_pixel(impl):
    # aligned=False (Detectron's ROIAlign): no -0.5 shift, bin centres at pixels 1.5, 2.5.
    rois = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    fn = tv_roi_align if impl == "torchvision" else roi_align_reference
    out = fn(_ramp(), rois, (2, 2), 1.0, 0, False)
    assert torch.allclose(
        out[0, 0], torch.tensor([[16.5, 17.5], [26.5, 27.5]], dtype=torch.float64)
    )


def test_spatial_scale_maps_image_boxes_to_the_feature_grid():
    # A box of [2, 6] image pixels at scale 1/2 covers feature cells [1, 3]: the same as above.
    rois = torch.tensor([[0, 2.0, 2.0, 6.0, 6.0]], dtype=torch.float64)
    out = roi_align_reference(_ramp(), rois, (2, 2), 0.5, 0, True)
    assert torch.allclose(
        out[0, 0], torch.tensor([[11.0, 12.0], [21.0, 22.0]], dtype=torch.float64)
    )


def test_samples_far_outside_the_map_contribute_zero():
    rois = torch.tensor([[0, 20.0, 20.0, 22.0, 22.0]], dtype=torch.float64)
    out = roi_align_reference(_ramp(), rois, (1, 1), 1.0, 2, True)
    assert out.abs().max() == 0


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 1, 3])
def test_reference_equals_torchvision_on_random_boxes(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 13, 17, generator=g, dtype=torch.float64)
    xy = torch.rand(20, 2, generator=g, dtype=torch.float64) * torch.tensor([60.0, 50.0]) - 5
    wh = torch.rand(20, 2, generator=g, dtype=torch.float64) * 40
    rois = torch.cat([torch.randint(0, 2, (20, 1), generator=g).double(), xy, xy + wh], dim=1)
    for scale in (1.0, 0.25):
        ours = roi_align_reference(features, rois, (7, 5), scale, sampling_ratio, aligned)
        theirs = tv_roi_align(features, rois, (7, 5), scale, sampling_ratio, aligned)
        assert torch.allclose(ours, theirs, atol=1e-10)


def test_module_checks_roi_shape():
    with pytest.raises(ValueError, match="rois must be"):
        ROIAlign(7, 1.0, 0)(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4))
