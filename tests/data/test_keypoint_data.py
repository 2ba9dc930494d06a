"""Keypoint annotations through the data pipeline, on a small hand-made COCO person-keypoints
file (the shared COCO sample has no keypoints): loading (+0.5 px), the mapper's transform and
left/right swap on a flip, `gt_keypoints`, and the MIN_KEYPOINTS_PER_IMAGE filter."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from rcnn_tiny import tiny_cfg

from masktron.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from masktron.data import transforms as T
from masktron.data.build import get_detection_dataset_dicts
from masktron.data.builtin_meta import get_builtin_metadata
from masktron.data.datasets.coco import register_coco_instances
from masktron.data.detection_utils import create_keypoint_hflip_indices
from masktron.models.build import build_model

W, H = 64, 48


def _person(ann_id, image_id, box, kps):
    flat = [v for k in kps for v in k]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": box,
        "iscrowd": 0,
        "area": box[2] * box[3],
        "keypoints": flat,
        "num_keypoints": sum(k[2] > 0 for k in kps),
    }


@pytest.fixture
def keypoint_dataset(tmp_path, fresh_name):
    """Image 1: one person with nose, left eye (visible) and right ankle (hidden) labelled;
    image 2: a person with no labelled keypoint."""
    for i in (1, 2):
        Image.fromarray(np.full((H, W, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    kps = [[0, 0, 0]] * 17
    kps = [list(k) for k in kps]
    kps[0], kps[1], kps[16] = [20, 10, 2], [22, 8, 2], [30, 40, 1]
    coco = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": W, "height": H} for i in (1, 2)],
        "annotations": [
            _person(1, 1, [10, 5, 30, 40], kps),
            _person(2, 2, [5, 5, 20, 20], [[0, 0, 0]] * 17),
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}],
    }
    (tmp_path / "kp.json").write_text(json.dumps(coco))
    name = fresh_name()
    register_coco_instances(
        name, get_builtin_metadata("coco_person"), str(tmp_path / "kp.json"), str(tmp_path)
    )
    return name


def test_coco_keypoints_load_at_pixel_centres(keypoint_dataset):
    (first, _) = DatasetCatalog.get(keypoint_dataset)
    kps = np.asarray(first["annotations"][0]["keypoints"]).reshape(17, 3)
    assert kps[0].tolist() == [20.5, 10.5, 2] and kps[16].tolist() == [30.5, 40.5, 1]


def test_flip_indices_swap_left_and_right(keypoint_dataset):
    idx = create_keypoint_hflip_indices([keypoint_dataset])
    names = MetadataCatalog.get(keypoint_dataset).keypoint_names
    assert idx[0] == 0 and names[idx[names.index("left_eye")]] == "right_eye"
    assert sorted(idx) == list(range(17))


@pytest.mark.parametrize("flip", [False, True])
def test_mapper_transforms_keypoints_into_gt_keypoints(keypoint_dataset, flip):
    augs = [T.Resize((2 * H, 2 * W))] + ([T.RandomFlip(prob=1.0)] if flip else [])
    mapper = DatasetMapper(
        is_train=True,
        augmentations=augs,
        image_format="BGR",
        use_keypoint=True,
        keypoint_hflip_indices=create_keypoint_hflip_indices([keypoint_dataset]),
    )
    out = mapper(DatasetCatalog.get(keypoint_dataset)[0])
    kps = out["instances"].gt_keypoints.tensor
    assert kps.shape == (1, 17, 3)
    nose, left_eye, right_eye = kps[0, 0], kps[0, 1], kps[0, 2]
    if flip:  # mirrored x, and the left eye is now labelled as the right one
        assert nose.tolist() == [2 * W - 41.0, 21.0, 2]
        assert right_eye.tolist() == [2 * W - 45.0, 17.0, 2] and left_eye.tolist() == [0, 0, 0]
        assert kps[0, 15].tolist() == [2 * W - 61.0, 81.0, 1]  # right ankle -> left ankle
    else:
        assert nose.tolist() == [41.0, 21.0, 2] and left_eye.tolist() == [45.0, 17.0, 2]


def test_flip_without_indices_is_refused(keypoint_dataset):
    mapper = DatasetMapper(is_train=True, augmentations=[T.RandomFlip(prob=1.0)], use_keypoint=True)
    with pytest.raises(ValueError, match="flip indices"):
        mapper(DatasetCatalog.get(keypoint_dataset)[0])


def test_mapper_drops_keypoints_when_not_used(keypoint_dataset):
    mapper = DatasetMapper(is_train=True, augmentations=[], use_keypoint=False)
    out = mapper(DatasetCatalog.get(keypoint_dataset)[0])
    assert not out["instances"].has("gt_keypoints")


def test_images_with_too_few_keypoints_are_filtered(keypoint_dataset):
    assert len(get_detection_dataset_dicts([keypoint_dataset])) == 2
    kept = get_detection_dataset_dicts([keypoint_dataset], min_keypoints=1)
    assert [d["image_id"] for d in kept] == [1]
    assert get_detection_dataset_dicts([keypoint_dataset], min_keypoints=3)[0]["image_id"] == 1
    with pytest.raises(ValueError):
        get_detection_dataset_dicts([keypoint_dataset], min_keypoints=4)


def test_keypoint_config_mapper_and_model_train_together(keypoint_dataset):
    """The keypoint zoo config's mapper output feeds a training step of a tiny model."""
    cfg = tiny_cfg("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml", depth=18)
    cfg.DATASETS.TRAIN = (keypoint_dataset,)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = [8]
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    mapper = DatasetMapper(cfg, True)
    batch = [mapper(d) for d in DatasetCatalog.get(keypoint_dataset)]
    torch.manual_seed(0)
    losses = build_model(cfg).train()(batch)
    assert torch.isfinite(losses["loss_keypoint"]) and losses["loss_keypoint"] > 0


def test_keypoint_predictions_evaluate_as_keypoint_ap(keypoint_dataset, tmp_path):
    """The model's `pred_keypoints` are what COCOEvaluator reads for keypoint AP."""
    from masktron.evaluation import COCOEvaluator

    cfg = tiny_cfg("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml", depth=18)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = [8]
    cfg.INPUT.MIN_SIZE_TEST = 64
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.nn.init.zeros_(model.roi_heads.box_predictor.cls_score.weight)  # some detections
    mapper = DatasetMapper(cfg, False)
    evaluator = COCOEvaluator(keypoint_dataset, output_dir=str(tmp_path))
    evaluator.reset()
    with torch.no_grad():
        for d in DatasetCatalog.get(keypoint_dataset):
            outputs = model([mapper(d)])
            assert outputs[0]["instances"].pred_keypoints.shape[1:] == (17, 3)
            evaluator.process([d], outputs)
    results = evaluator.evaluate()
    assert {"bbox", "keypoints"} <= set(results)
    assert set(results["keypoints"]) >= {"AP", "AP50", "AP75"}
