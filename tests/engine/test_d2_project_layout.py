"""A Detectron2 project, written against Detectron2's API, runs on masktron once its imports
say `masktron` instead of `detectron2`: a custom RoI head registered by name, a config extended
by an `add_*_config` function, and a `DefaultTrainer` subclass with its own `build_evaluator`.
It trains 5 iterations on two real photos and evaluates."""

import importlib.util
import json
import sys

import pytest
from engine_helpers import BALLOON, small_balloon_set, tiny_cfg

from masktron.data import DatasetCatalog, register_via_instances

# The project as a Detectron2 user writes it (only the package name is changed by the test).
PROJECT = '''
import torch

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import COCOEvaluator
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.utils.events import get_event_storage


def add_weighted_mask_config(cfg):
    cfg.MODEL.WEIGHTED_MASK = CN()
    cfg.MODEL.WEIGHTED_MASK.WEIGHT = 1.0
    cfg.MODEL.WEIGHTED_MASK.LOG_PROPOSALS = True


@ROI_HEADS_REGISTRY.register()
class WeightedMaskROIHeads(StandardROIHeads):
    """Standard RoI heads whose mask loss is scaled by a project key."""

    def __init__(self, cfg, input_shape):
        super().__init__(cfg, input_shape)
        self.mask_weight = cfg.MODEL.WEIGHTED_MASK.WEIGHT
        self.log_proposals = cfg.MODEL.WEIGHTED_MASK.LOG_PROPOSALS

    def forward(self, images, features, proposals, targets=None):
        instances, losses = super().forward(images, features, proposals, targets)
        if self.training:
            losses["loss_mask"] = losses["loss_mask"] * self.mask_weight
            if self.log_proposals:
                count = sum(len(p) for p in proposals)
                get_event_storage().put_scalar("weighted_mask/proposals", count)
        return instances, losses


class Trainer(DefaultTrainer):
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return COCOEvaluator(dataset_name, ("bbox", "segm"), False, output_dir=output_folder)


def setup(config_file, opts):
    cfg = get_cfg()
    add_weighted_mask_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.freeze()
    return cfg


def main(config_file, opts):
    cfg = setup(config_file, opts)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer, Trainer.test(cfg, trainer.model)
'''


def import_ported(tmp_path):
    path = tmp_path / "ported_project.py"
    path.write_text(PROJECT.replace("detectron2", "masktron"))
    spec = importlib.util.spec_from_file_location("ported_project", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ported_project"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_ported_project_trains_and_evaluates(tmp_path, single_thread):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON} (set MASKTRON_SHARED)")
    dataset = "d2_project_balloon2"
    json_file = small_balloon_set(tmp_path / "data")
    if dataset not in DatasetCatalog:
        register_via_instances(dataset, {"thing_classes": ["balloon"]}, json_file, json_file.parent)
    project = import_ported(tmp_path)
    # The project's YAML names its own RoI heads and sets its own key.
    cfg = tiny_cfg(tmp_path / "out", (dataset,), max_iter=5)
    cfg.DATASETS.TEST = [dataset]
    text = cfg.dump().replace("MODEL:\n", "MODEL:\n  WEIGHTED_MASK:\n    WEIGHT: 0.5\n", 1)
    text = text.replace("NAME: StandardROIHeads", "NAME: WeightedMaskROIHeads")
    config_file = tmp_path / "project.yaml"
    config_file.write_text(text)
    trainer, results = project.main(str(config_file), ["MODEL.WEIGHTED_MASK.LOG_PROPOSALS", "True"])

    heads = trainer.model.roi_heads
    assert type(heads).__name__ == "WeightedMaskROIHeads" and heads.mask_weight == 0.5
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    trained = [m for m in metrics if "weighted_mask/proposals" in m]
    assert trained[-1]["iteration"] == 4 and trained[-1]["weighted_mask/proposals"] > 0
    assert set(results) == {"bbox", "segm"} and "AP50" in results["segm"]
    # A YAML naming a head that nobody registered is refused with the slot's key.
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("NAME: WeightedMaskROIHeads", "NAME: MissingHeads"))
    cfg = project.setup(str(bad), [])
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.NAME 'MissingHeads'"):
        project.Trainer.build_model(cfg)
