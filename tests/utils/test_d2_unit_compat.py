"""Detectron2 behaviours that its own unit tests rely on (measured in docs/porting.md), checked
here from Detectron2's documented behaviour: ASPP branches own their activation, ResNet's
positional form and default stages, the metric printer's logger and ETA, the aspect-ratio
buckets, iterable test loaders, unused-parameter search, the legacy mask helpers and
`COCOeval_opt` refusing what pycocotools refuses."""

import contextlib
import copy
import io
import logging

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torch.nn import functional as F

from masktron.data import DatasetFromList, ToIterableDataset, build_detection_test_loader
from masktron.data.common import AspectRatioGroupedDataset
from masktron.data.samplers import InferenceSampler
from masktron.engine import events as events_module
from masktron.evaluation.fast_eval_api import COCOeval_opt
from masktron.layers import ASPP, ShapeSpec
from masktron.layers.mask_ops import pad_masks, paste_mask_in_image_old, scale_boxes
from masktron.modeling.backbone.resnet import BasicStem, ResNet
from masktron.utils.analysis import find_unused_parameters
from masktron.utils.events import CommonMetricPrinter, EventStorage


def test_aspp_branches_do_not_share_a_module_activation():
    m = ASPP(3, 4, [1, 2, 3], norm="", activation=nn.PReLU())
    weights = [c.activation.weight for c in m.convs[:4]] + [m.project.activation.weight]
    assert len({id(w) for w in weights}) == len(weights)
    assert m(torch.rand(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    # a plain function is used as it is
    assert ASPP(3, 4, [1, 2, 3], norm="", activation=F.relu).convs[0].activation is F.relu


def test_resnet_positional_form_default_stages_and_unused_stages():
    stages = ResNet.make_default_stages(18)
    assert [len(s) for s in stages] == [2, 2, 2, 2]
    r = ResNet(BasicStem(), stages, out_features=["res3"])
    assert hasattr(r, "res3") and not hasattr(r, "res4") and not hasattr(r, "res5")
    shapes = r.output_shape()
    assert shapes["res3"].channels == 128 and shapes["res3"].stride == 8
    # default output: the last stage; ResNet-50 widths with a quarter-width bottleneck
    r50 = ResNet(BasicStem(), ResNet.make_default_stages(50))
    assert list(r50.output_shape()) == ["res5"]
    assert r50.output_shape()["res5"].channels == 2048 and r50.output_shape()["res5"].stride == 32
    assert r50.res2[0].conv1.out_channels == 64
    with pytest.raises(ValueError, match="res6"):
        ResNet(BasicStem(), ResNet.make_default_stages(18), out_features=["res6"])


def test_metric_printer_logs_on_utils_events_with_an_eta_from_write_times(monkeypatch):
    clock = iter([100.0, 110.0])  # two writes, 10 s apart, 5 iterations apart
    monkeypatch.setattr(events_module.time, "perf_counter", lambda: next(clock))
    printer = CommonMetricPrinter(max_iter=20)
    assert printer.logger.name == "masktron.utils.events"
    with EventStorage() as storage:
        storage.iter = 4
        storage.put_scalar("loss", 1.0)
        with pytest.raises(AssertionError):  # first write: no ETA yet
            with _assert_logs_contain(printer.logger, "eta"):
                printer.write()
        storage.iter = 9
        storage.put_scalar("loss", 1.0)
        # 2 s per iteration, 10 iterations left
        with _assert_logs_contain(printer.logger, "eta: 0:00:20"):
            printer.write()


@contextlib.contextmanager
def _assert_logs_contain(logger: logging.Logger, text: str):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any(text in r.getMessage() for r in records), [r.getMessage() for r in records]


def test_aspect_ratio_buckets_are_emptied_before_a_batch_is_yielded():
    data = [{"width": w, "height": h} for w, h in [(2, 1), (1, 2), (2, 1), (1, 2), (2, 1)]]
    grouped = AspectRatioGroupedDataset(data, 2)
    for _ in range(3):
        for batch in grouped:
            assert len({d["width"] > d["height"] for d in batch}) == 1
            break  # stop early: the yielded batch left its bucket
        assert all(len(b) < 2 for b in grouped._buckets)


def test_test_loader_reads_an_iterable_dataset_without_a_sampler():
    ds = DatasetFromList(list(range(7)))
    loader = build_detection_test_loader(
        dataset=ToIterableDataset(ds, InferenceSampler(len(ds))), mapper=lambda x: x * 10
    )
    assert [x for batch in loader for x in batch] == [0, 10, 20, 30, 40, 50, 60]
    with pytest.raises(ValueError, match="no sampler"):
        build_detection_test_loader(
            dataset=ToIterableDataset(ds, InferenceSampler(len(ds))),
            mapper=lambda x: x,
            sampler=InferenceSampler(len(ds)),
        )


def test_find_unused_parameters():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 1)
            self.unused = nn.Linear(3, 1)

        def forward(self, x, scale):
            return {"loss": self.used(x).sum() * scale}

    m = TwoHeads()
    assert set(find_unused_parameters(m, (torch.rand(2, 3), 2.0))) == {
        "unused.weight",
        "unused.bias",
    }
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(ValueError, match="training mode"):
        find_unused_parameters(m.eval(), (torch.rand(2, 3), 1.0))


def test_legacy_mask_helpers():
    masks = torch.ones(2, 4, 4)
    padded, scale = pad_masks(masks, 1)
    assert padded.shape == (2, 6, 6) and scale == pytest.approx(1.5)
    assert padded[:, 0].sum() == 0 and padded[:, 1:5, 1:5].eq(1).all()
    boxes = torch.tensor([[10.0, 20.0, 14.0, 22.0]])
    assert scale_boxes(boxes, 2.0).tolist() == [[8.0, 19.0, 16.0, 23.0]]
    # truncated box 2.7 -> 2 .. 5.2 -> 5: pixels 2..5 inclusive; clipped at the image border
    pasted = paste_mask_in_image_old(
        torch.ones(3, 3), torch.tensor([2.7, 1.0, 5.2, 9.0]), 6, 8, 0.5
    )
    assert pasted.dtype == torch.uint8 and pasted.shape == (6, 8)
    assert pasted[1:6, 2:6].eq(1).all() and pasted.sum() == 5 * 4


_GT = {
    "images": [{"id": 1, "width": 50, "height": 40}],
    "categories": [{"id": 1, "name": "a"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100,
         "iscrowd": 0, "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
    ],
}  # fmt: skip
_DT = [{"image_id": 1, "category_id": 1, "bbox": [6, 5, 10, 10], "score": 0.9}]


def _run(cls, gt_dataset, dt, iou_type="bbox", max_dets=None):
    coco = COCO()
    coco.dataset = copy.deepcopy(gt_dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = cls(coco, coco.loadRes(copy.deepcopy(dt)), iou_type)
        if max_dets is not None:
            ev.params.maxDets = max_dets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize(
    "gt_change, dt_change, max_dets, error",
    [
        ("area", None, None, KeyError),
        ("iscrowd", None, None, KeyError),
        (None, "score", None, KeyError),
        (None, None, [1], IndexError),
        (None, None, [], IndexError),
    ],
)
def test_cocoeval_opt_refuses_what_pycocotools_refuses(gt_change, dt_change, max_dets, error):
    gt, dt = copy.deepcopy(_GT), copy.deepcopy(_DT)
    if gt_change:
        del gt["annotations"][0][gt_change]
    if dt_change:
        del dt[0][dt_change]
    for cls in (COCOeval, COCOeval_opt):
        with pytest.raises(error):
            _run(cls, gt, dt, max_dets=max_dets)


def test_cocoeval_opt_equals_pycocotools_on_good_input():
    ref, opt = _run(COCOeval, _GT, _DT), _run(COCOeval_opt, _GT, _DT)
    assert list(opt.stats) == pytest.approx(list(ref.stats), abs=1e-6)


def test_checkpointer_resolves_paths_through_its_path_manager(tmp_path):
    from masktron.checkpoint import DetectionCheckpointer

    model = nn.Linear(2, 3)
    torch.save({"model": {k: v + 1 for k, v in model.state_dict().items()}}, tmp_path / "w.pth")

    class Handler:  # what Detectron2 code assigns: an iopath-style `get_local_path`
        def get_local_path(self, path):
            return str(tmp_path / path[len("mine://") :])

    checkpointer = DetectionCheckpointer(model)
    checkpointer.path_manager = Handler()
    before = model.weight.detach().clone()
    checkpointer.load("mine://w.pth")
    assert torch.equal(model.weight, before + 1)


def test_best_checkpointer_skips_a_nan_first_metric(caplog):
    from types import SimpleNamespace

    from masktron.engine.hooks import BestCheckpointer

    class NoSave:
        saved = 0

        def save(self, *args, **kwargs):
            self.saved += 1

    saver = NoSave()
    hook = BestCheckpointer(10, saver, "metric", mode="min")  # type: ignore[arg-type]
    hook.trainer = SimpleNamespace(iter=9, snapshot_rng_states=lambda: None)
    with caplog.at_level(logging.INFO, logger="masktron.engine.metric_hooks"):
        hook.on_metric(float("nan"))
        hook.on_metric(0.5)
    assert saver.saved == 1 and hook.best_metric == 0.5
    assert "not a finite value" in caplog.text


def test_box_predictor_empty_batch_and_inference_indices():
    from masktron.modeling.box_regression import Box2BoxTransform
    from masktron.modeling.roi_heads import FastRCNNOutputLayers
    from masktron.structures import Boxes, Instances

    predictor = FastRCNNOutputLayers(
        ShapeSpec(channels=6), box2box_transform=Box2BoxTransform((10, 10, 5, 5)), num_classes=3
    )
    logits = torch.randn(0, 4, requires_grad=True)
    deltas = torch.randn(0, 12, requires_grad=True)
    losses = predictor.losses((logits, deltas), [])
    assert all(float(v.detach()) == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert logits.grad is not None and deltas.grad is not None
    instances, kept = predictor.inference((logits, deltas), [])
    assert instances == [] and kept == []
    # Detectron2's pair: detections and the proposal each one comes from
    props = Instances(
        (20, 20), proposal_boxes=Boxes(torch.tensor([[0.0, 0, 5, 5], [8, 8, 16, 16]]))
    )
    scores = torch.tensor([[-9.0, -9, -9, 9], [9.0, -9, -9, -9]])  # proposal 1: class 0
    instances, kept = predictor.inference((scores, torch.zeros(2, 12)), [props])
    assert instances[0].pred_classes.tolist() == [0] and kept[0].tolist() == [1]


def test_box_head_initialises_like_detectron2_for_a_seed():
    from masktron.layers import c2_xavier_fill
    from masktron.modeling.roi_heads import FastRCNNConvFCHead

    torch.manual_seed(3)
    head = FastRCNNConvFCHead(
        ShapeSpec(channels=4, height=2, width=2), conv_dims=[], fc_dims=[5, 6]
    )
    # Detectron2's order: every layer created first, then each initialised
    torch.manual_seed(3)
    fc1, fc2 = nn.Linear(16, 5), nn.Linear(5, 6)
    c2_xavier_fill(fc1)
    c2_xavier_fill(fc2)
    assert torch.equal(head.fc1.weight, fc1.weight) and torch.equal(head.fc2.weight, fc2.weight)


def test_train_loader_batches_an_iterable_dataset():
    from masktron.data import build_detection_train_loader
    from masktron.data.samplers import TrainingSampler

    dicts = [{"width": 4, "height": 3, "i": i} for i in range(5)]
    ds = ToIterableDataset(DatasetFromList(dicts), TrainingSampler(len(dicts), seed=0))
    loader = build_detection_train_loader(dataset=ds, mapper=dict, total_batch_size=2)
    batches = [b for _, b in zip(range(3), loader)]  # infinite: the sampler repeats
    assert all(len(b) == 2 for b in batches)
    assert {d["i"] for b in batches for d in b} <= set(range(5))
    with pytest.raises(ValueError, match="no sampler"):
        build_detection_train_loader(
            dataset=ds, mapper=lambda d: d, total_batch_size=2, sampler=TrainingSampler(5)
        )


def test_default_trainer_model_is_the_inner_trainers():
    from types import SimpleNamespace

    from masktron.engine import DefaultTrainer

    trainer = DefaultTrainer.__new__(DefaultTrainer)  # the property alone, no config needed
    trainer._trainer = SimpleNamespace(model=nn.Linear(1, 1))
    replacement = nn.Linear(2, 2)
    trainer.model = replacement
    assert trainer.model is replacement and trainer._trainer.model is replacement


def test_find_top_rpn_proposals_positional_and_non_finite_scores():
    from masktron.modeling.proposal_generator.proposal_utils import find_top_rpn_proposals

    boxes = [torch.tensor([[[0.0, 0, 4, 4], [1, 1, 6, 6], [8, 8, 9, 9]]])]  # (N=1, 3, 4)
    logits = [torch.tensor([[float("inf"), 0.5, 0.2]])]
    # Detectron2's positional form: nms_thresh, pre_nms_topk, post_nms_topk, min_box_size, training
    (out,) = find_top_rpn_proposals(boxes, logits, [(10, 10)], 0.5, 10, 10, 0, False)
    assert out.objectness_logits.tolist() == pytest.approx([0.5, 0.2])  # the inf one dropped
    with pytest.raises(FloatingPointError):
        find_top_rpn_proposals(boxes, logits, [(10, 10)], 0.5, 10, 10, 0, True)


def test_mask_and_keypoint_heads_initialise_like_detectron2_for_a_seed():
    from masktron.layers import c2_msra_fill
    from masktron.modeling.roi_heads import KRCNNConvDeconvUpsampleHead, MaskRCNNConvUpsampleHead

    torch.manual_seed(5)
    mask_head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=3), num_classes=2, conv_dims=[4, 4])
    torch.manual_seed(5)  # Detectron2's order: conv, deconv, predictor created, then initialised
    conv, deconv = nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 4, 2, stride=2)
    nn.Conv2d(4, 2, 1)
    c2_msra_fill(conv)
    c2_msra_fill(deconv)
    assert torch.equal(mask_head.mask_fcn1.weight, conv.weight)
    assert torch.equal(mask_head.deconv.weight, deconv.weight)
    # positional input_shape, as Detectron2's KRCNNConvDeconvUpsampleHead(input_shape, ...)
    torch.manual_seed(5)
    kp_head = KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=3), num_keypoints=2, conv_dims=[4])
    torch.manual_seed(5)
    conv, score = nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)
    for layer in (conv, score):
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    assert torch.equal(kp_head.conv_fcn1.weight, conv.weight)
    assert torch.equal(kp_head.score_lowres.weight, score.weight)


def test_resnet_backbone_builds_every_stage_then_drops_the_unused_ones():
    from masktron.config import get_cfg
    from masktron.modeling.backbone import build_backbone

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 18, 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3"]
    torch.manual_seed(0)
    res3 = build_backbone(cfg)
    after_res3 = torch.rand(3)
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    torch.manual_seed(0)
    res5 = build_backbone(cfg)
    # as Detectron2's: res4 and res5 were created (the random state moved past them) and dropped
    assert not hasattr(res3, "res4") and hasattr(res5, "res5")
    assert torch.equal(torch.rand(3), after_res3)
    assert torch.equal(res3.res3[0].conv1.weight, res5.res3[0].conv1.weight)
