"""RoIAlign split across threads equals one call bit for bit; the fallbacks keep one call."""

import pytest
import torch

from masktron.layers import ROIAlign
from masktron.layers import roi_align_parallel as parallel
from masktron.models.poolers import ROIPooler, nchw_contiguous, nchw_feature_maps
from masktron.structures import Boxes


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _random_boxes(count: int, size: float, generator: torch.Generator) -> Boxes:
    """`count` boxes in a `size` square image, sides from 2 px to the whole image."""
    xy = torch.rand(count, 2, generator=generator) * size * 0.9
    wh = torch.rand(count, 2, generator=generator) ** 2 * size + 2
    return Boxes(torch.cat([xy, xy + wh], dim=1))


def _pyramid(generator: torch.Generator, channels_last: bool) -> list[torch.Tensor]:
    """Features of 2 images at strides 4 to 32 of a 256-px input."""
    maps = [torch.randn(2, 8, 256 // s, 256 // s, generator=generator) for s in (4, 8, 16, 32)]
    if channels_last:
        maps = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    return maps


def test_runs_split_boxes_by_cost_in_call_and_box_order():
    ones = [torch.ones(n) for n in (5, 0, 7, 3)]
    assert parallel._runs(ones, 3) == [[(0, 0, 5)], [(2, 0, 5)], [(2, 5, 7), (3, 0, 3)]]
    # six cheap boxes then two dear ones: 6 | 10 is the most even cut
    costs = [torch.tensor([1.0] * 6), torch.tensor([5.0] * 2)]
    assert parallel._runs(costs, 2) == [[(0, 0, 6)], [(1, 0, 2)]]


def test_box_costs_count_the_adaptive_sampling_grid():
    rois = torch.tensor([[0, 0, 0, 28, 14], [0, 10, 10, 122, 66], [0, 0, 0, float("nan"), 9]])
    costs = parallel.box_costs(ROIAlign(7, 1 / 4, 0), rois)
    assert costs.tolist() == [2.0, 9.0, 2.0]  # 1x1 samples, 4x2 samples, NaN side counted 1
    assert parallel.box_costs(ROIAlign(7, 1 / 4, 2), rois).tolist() == [5.0] * 3


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_threaded_pooler_equals_single_calls(
    two_threads, monkeypatch, channels_last, sampling_ratio
):
    g = torch.Generator().manual_seed(sampling_ratio)
    features = _pyramid(g, channels_last)
    boxes = [_random_boxes(150, 256, g), _random_boxes(90, 256, g)]
    pooler = ROIPooler(
        output_size=7,
        scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32],
        sampling_ratio=sampling_ratio,
        pooler_type="ROIAlignV2",
    )
    used: list[int] = []
    threads_for = parallel._threads_for
    monkeypatch.setattr(
        parallel, "_threads_for", lambda calls: used.append(threads_for(calls)) or used[-1]
    )
    with torch.inference_mode():
        threaded = pooler(features, boxes)
        torch.set_num_threads(1)
        single = pooler(features, boxes)
    assert used == [2, 1]
    assert threaded.shape == (240, 8, 7, 7) and threaded.abs().sum() > 0
    assert torch.equal(threaded, single)


def test_split_returns_several_pieces_equal_to_one_call(two_threads):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 4, 40, 48, generator=g)
    rois = torch.cat(
        [torch.randint(0, 2, (100, 1), generator=g).float(), _random_boxes(100, 160, g).tensor],
        dim=1,
    )
    calls = [(ROIAlign(14, 0.25, 0), features, rois), (ROIAlign(7, 0.25, 2), features, rois[:9])]
    with torch.no_grad():
        pieces = parallel.roi_align_split(calls)
    assert [len(p) for p in pieces] == [2, 1]  # 109 boxes: 55 on this thread, 54 on a worker
    for (module, feature, boxes), piece in zip(calls, pieces):
        assert torch.equal(torch.cat(piece), module(feature, boxes))


def test_fallbacks_make_one_call(two_threads):
    g = torch.Generator().manual_seed(1)
    features = torch.randn(1, 4, 32, 32, generator=g, requires_grad=True)
    rois = torch.cat([torch.zeros(80, 1), _random_boxes(80, 100, g).tensor], dim=1)
    module = ROIAlign(7, 0.25, 0)
    # autograd needs the graph of one call: training keeps the plain path, gradients flow
    pieces = parallel.roi_align_split([(module, features, rois)])
    assert len(pieces[0]) == 1
    pieces[0][0].sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    with torch.no_grad():
        assert len(parallel.roi_align_split([(module, features, rois[:63])])[0]) == 1
        assert len(parallel.roi_align_split([(module, features, rois)])[0]) == 2
        # a forward hook sees one call with every box, on the calling thread
        seen = []
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out.shape[0]))
        assert len(parallel.roi_align_split([(module, features, rois)])[0]) == 1
        handle.remove()
        assert seen == [80]
        torch.set_num_threads(1)
        assert len(parallel.roi_align_split([(module, features, rois)])[0]) == 1


def test_nchw_contiguous_copies_channels_last_maps_only():
    g = torch.Generator().manual_seed(2)
    maps = {f"p{k}": torch.randn(2, 8, 9 * k, 7 * k, generator=g) for k in (2, 3)}
    maps["p3"] = maps["p3"].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = nchw_feature_maps(maps, ["p2", "p3", "p3"])
    assert out["p2"] is maps["p2"]  # already (N, C, H, W)-contiguous
    assert out["p3"].is_contiguous() and torch.equal(out["p3"], maps["p3"])
    grad = maps["p3"].clone().requires_grad_()
    assert nchw_contiguous(grad) is grad  # autograd keeps the map (and RoIAlign's own copy)


def test_pooler_rows_of_boxes_without_a_level_are_zero():
    g = torch.Generator().manual_seed(3)
    features = _pyramid(g, channels_last=False)
    boxes = _random_boxes(5, 256, g)
    boxes.tensor[2, 0] = float("nan")  # no size, so no level: Detectron2 leaves the row zero
    pooler = ROIPooler(
        output_size=2, scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32], sampling_ratio=0,
        pooler_type="ROIAlignV2",
    )  # fmt: skip
    with torch.no_grad():
        out = pooler(features, [boxes])
    assert out[2].abs().sum() == 0 and out[[0, 1, 3, 4]].abs().sum(dim=(1, 2, 3)).min() > 0
