"""Boxes, BoxMode, Instances, ImageList and masks: semantics and round trips."""

import copy
import pickle

import numpy as np
import pytest
import torch

from masktron.structures import (
    BitMasks,
    Boxes,
    BoxMode,
    ImageList,
    Instances,
    PolygonMasks,
    pairwise_ioa,
    pairwise_iou,
)


def test_box_mode_conversions_keep_the_input_type():
    assert BoxMode.convert([1, 2, 3, 4], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1, 2, 4, 6]
    assert BoxMode.convert((1, 2, 4, 6), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS) == (1, 2, 3, 4)
    arr = BoxMode.convert(np.array([[1, 2, 3, 4]], np.float32), 1, 0)
    assert arr.dtype == np.float32 and arr.tolist() == [[1, 2, 4, 6]]
    t = torch.tensor([[1.0, 2, 3, 4]])
    assert BoxMode.convert(t, 1, 0).tolist() == [[1, 2, 4, 6]] and t.tolist() == [[1, 2, 3, 4]]
    rotated = BoxMode.convert(torch.tensor([[10.0, 10, 4, 2, 90]]), BoxMode.XYWHA_ABS, 0)
    assert torch.allclose(rotated, torch.tensor([[9.0, 8, 11, 12]]), atol=1e-5)
    with pytest.raises(ValueError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_REL, BoxMode.XYXY_ABS)


def test_boxes_area_clip_nonempty_scale_and_iou():
    boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 25], [3, 3, 3, 9]]))
    assert boxes.area().tolist() == [100, 200, 0]
    assert boxes.nonempty().tolist() == [True, True, False]
    iou = pairwise_iou(boxes, boxes)
    assert torch.allclose(iou[0, 1], torch.tensor(25 / 275)) and iou[2, 2] == 0
    assert torch.allclose(pairwise_ioa(boxes[0], boxes[1:2]), torch.tensor([[25 / 200]]))
    boxes.clip((20, 12))
    assert boxes.tensor[1].tolist() == [5, 5, 12, 20]
    boxes.scale(2.0, 0.5)
    assert boxes.tensor[0].tolist() == [0, 0, 20, 5]
    assert len(Boxes(torch.zeros(0))) == 0 and len(Boxes.cat([boxes, boxes])) == 6
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Boxes(torch.zeros(3, 5))


def test_instances_fields_indexing_cat_and_checks():
    inst = Instances((20, 30), scores=torch.tensor([0.25, 0.75, 0.5]))
    inst.pred_boxes = Boxes(torch.rand(3, 4))
    inst.names = ["a", "b", "c"]
    top = inst[inst.scores > 0.4]
    assert len(top) == 2 and top.names == ["b", "c"] and top.image_size == (20, 30)
    assert inst[1].scores.tolist() == [0.75] and inst[-1].names == ["c"]
    assert len(Instances.cat([inst, top])) == 5
    with pytest.raises(ValueError, match="length"):
        inst.other = torch.zeros(4)
    with pytest.raises(AttributeError, match="no field 'missing'"):
        _ = inst.missing


def test_instances_pickle_and_deepcopy_round_trip():
    # DataLoader workers pickle Instances to send batches back.
    inst = Instances((4, 5), gt_boxes=Boxes(torch.ones(2, 4)), gt_classes=torch.tensor([1, 2]))
    for copied in (pickle.loads(pickle.dumps(inst)), copy.deepcopy(inst)):
        assert copied.image_size == (4, 5) and copied.gt_classes.tolist() == [1, 2]
        assert torch.equal(copied.gt_boxes.tensor, inst.gt_boxes.tensor)


def test_image_list_pads_bottom_right_to_divisibility():
    a, b = torch.ones(3, 5, 7), 2 * torch.ones(3, 9, 4)
    images = ImageList.from_tensors([a, b], size_divisibility=8, pad_value=-1)
    assert images.tensor.shape == (2, 3, 16, 8) and images.image_sizes == [(5, 7), (9, 4)]
    assert torch.equal(images[0], a) and torch.equal(images[1], b)
    assert (images.tensor[0, :, 5:] == -1).all() and (images.tensor[1, :, :, 4:] == -1).all()


def test_polygon_and_bit_masks_agree():
    square = [[2.0, 2.0, 8.0, 2.0, 8.0, 6.0, 2.0, 6.0]]
    poly = PolygonMasks([square, [[0.0, 0, 3, 0, 0, 3]]])
    bits = BitMasks.from_polygon_masks(poly, 10, 12)
    assert bits.tensor.shape == (2, 10, 12) and int(bits.area()[0]) == 24
    assert torch.allclose(poly.area(), torch.tensor([24.0, 4.5], dtype=torch.float64))
    assert poly.get_bounding_boxes().tensor[0].tolist() == [2, 2, 8, 6]
    assert bits.get_bounding_boxes().tensor[0].tolist() == [2, 2, 8, 6]
    box = torch.tensor([[2.0, 2, 8, 6]])
    assert poly[0].crop_and_resize(box, 7).all() and bits[0].crop_and_resize(box, 7).all()
    assert len(PolygonMasks.cat([poly, poly[torch.tensor([True, False])]])) == 3
    with pytest.raises(ValueError, match="3\\+ \\(x, y\\) points"):
        PolygonMasks([[[0.0, 0.0, 1.0, 1.0]]])
