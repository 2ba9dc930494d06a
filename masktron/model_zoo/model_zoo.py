"""The model zoo: configs shipped with masktron and Detectron2's trained checkpoints.

Config names are paths relative to `masktron/model_zoo/configs/`, as in Detectron2
("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"). Checkpoint URLs are Detectron2's
official ones; the published figures are those of Detectron2's MODEL_ZOO.md (COCO val2017,
percent) so users can check what they download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from masktron.config import get_cfg

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
S3_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"


@dataclass(frozen=True)
class ZooEntry:
    """One trained model: where its weights are and what it scored when published."""

    url_suffix: str  # "<model id>/model_final_<md5 prefix>.pkl", or a file shipped in the package
    box_ap: float | None = None
    mask_ap: float | None = None
    pq: float | None = None
    proposal_ar: float | None = None  # AR@1000 of proposal-only (RPN) models
    keypoint_ap: float | None = None  # COCO person keypoint AP (OKS)


# config name (without .yaml) -> entry; figures from Detectron2's MODEL_ZOO.md.
ZOO: dict[str, ZooEntry] = {
    "COCO-Detection/faster_rcnn_R_50_C4_1x": ZooEntry("137257644/model_final_721ade.pkl", 35.7),
    "COCO-Detection/faster_rcnn_R_50_DC5_1x": ZooEntry("137847829/model_final_51d356.pkl", 37.3),
    "COCO-Detection/faster_rcnn_R_50_FPN_1x": ZooEntry("137257794/model_final_b275ba.pkl", 37.9),
    "COCO-Detection/faster_rcnn_R_50_C4_3x": ZooEntry("137849393/model_final_f97cb7.pkl", 38.4),
    "COCO-Detection/faster_rcnn_R_50_DC5_3x": ZooEntry("137849425/model_final_68d202.pkl", 39.0),
    "COCO-Detection/faster_rcnn_R_50_FPN_3x": ZooEntry("137849458/model_final_280758.pkl", 40.2),
    "COCO-Detection/faster_rcnn_R_101_C4_3x": ZooEntry("138204752/model_final_298dad.pkl", 41.1),
    "COCO-Detection/faster_rcnn_R_101_DC5_3x": ZooEntry("138204841/model_final_3e0943.pkl", 40.6),
    "COCO-Detection/faster_rcnn_R_101_FPN_3x": ZooEntry("137851257/model_final_f6e8b1.pkl", 42.0),
    "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x": ZooEntry(
        "139173657/model_final_68b088.pkl", 43.0
    ),
    "COCO-Detection/retinanet_R_50_FPN_1x": ZooEntry("190397773/model_final_bfca0b.pkl", 37.4),
    "COCO-Detection/retinanet_R_50_FPN_3x": ZooEntry("190397829/model_final_5bd44e.pkl", 38.7),
    "COCO-Detection/retinanet_R_101_FPN_3x": ZooEntry("190397697/model_final_971ab9.pkl", 40.4),
    "COCO-Detection/rpn_R_50_C4_1x": ZooEntry("137258005/model_final_450694.pkl", proposal_ar=51.6),
    "COCO-Detection/rpn_R_50_FPN_1x": ZooEntry(
        "137258492/model_final_02ce48.pkl", proposal_ar=58.0
    ),
    "COCO-Detection/fast_rcnn_R_50_FPN_1x": ZooEntry("137635226/model_final_e5f7ce.pkl", 37.8),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x": ZooEntry(
        "137259246/model_final_9243eb.pkl", 36.8, 32.2
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x": ZooEntry(
        "137260150/model_final_4f86c3.pkl", 38.3, 34.2
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x": ZooEntry(
        "137260431/model_final_a54504.pkl", 38.6, 35.2
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x": ZooEntry(
        "137849525/model_final_4ce675.pkl", 39.8, 34.4
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x": ZooEntry(
        "137849551/model_final_84107b.pkl", 40.0, 35.9
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x": ZooEntry(
        "137849600/model_final_f10217.pkl", 41.0, 37.2
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_C4_3x": ZooEntry(
        "138363239/model_final_a2914c.pkl", 42.6, 36.7
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_DC5_3x": ZooEntry(
        "138363294/model_final_0464b7.pkl", 41.9, 37.3
    ),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x": ZooEntry(
        "138205316/model_final_a3ec72.pkl", 42.9, 38.6
    ),
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x": ZooEntry(
        "139653917/model_final_2d9806.pkl", 44.3, 39.5
    ),
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x": ZooEntry(
        "139514544/model_final_dbfeb4.pkl", 37.6, 34.7, 39.4
    ),
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x": ZooEntry(
        "139514569/model_final_c10459.pkl", 40.0, 36.5, 41.5
    ),
    "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x": ZooEntry(
        "139514519/model_final_cafdb1.pkl", 42.4, 38.5, 43.0
    ),
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x": ZooEntry(
        "137261548/model_final_04e291.pkl", 53.6, keypoint_ap=64.0
    ),
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x": ZooEntry(
        "137849621/model_final_a6e10b.pkl", 55.4, keypoint_ap=65.5
    ),
    "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x": ZooEntry(
        "138363331/model_final_997cc7.pkl", 56.4, keypoint_ap=66.1
    ),
    "COCO-Keypoints/keypoint_rcnn_X_101_32x8d_FPN_3x": ZooEntry(
        "139686956/model_final_5ad38f.pkl", 57.3, keypoint_ap=66.0
    ),
    "Misc/cascade_mask_rcnn_R_50_FPN_1x": ZooEntry("138602847/model_final_e9d89b.pkl", 42.1, 36.4),
    "Misc/cascade_mask_rcnn_R_50_FPN_3x": ZooEntry("144998488/model_final_480dd8.pkl", 44.3, 38.5),
    "Misc/mask_rcnn_R_50_FPN_3x_syncbn": ZooEntry("169527823/model_final_3b3c51.pkl", 41.9, 37.8),
    "Misc/mask_rcnn_R_50_FPN_3x_gn": ZooEntry("138602888/model_final_dc5d9e.pkl", 42.6, 38.6),
    "Misc/scratch_mask_rcnn_R_50_FPN_3x_gn": ZooEntry(
        "138602908/model_final_01ca85.pkl", 39.9, 36.6
    ),
    # Detectron2's new baselines (LazyConfigs, `.py`): trained from scratch with large-scale
    # jitter; figures from its MODEL_ZOO.md. The 50-epoch R50 config has no published weights.
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ": ZooEntry(
        "42047764/model_final_bb69de.pkl", 44.6, 40.3
    ),
    "new_baselines/mask_rcnn_R_50_FPN_200ep_LSJ": ZooEntry(
        "42047638/model_final_89a8d3.pkl", 46.3, 41.7
    ),
    "new_baselines/mask_rcnn_R_50_FPN_400ep_LSJ": ZooEntry(
        "42019571/model_final_14d201.pkl", 47.4, 42.5
    ),
    "new_baselines/mask_rcnn_R_101_FPN_100ep_LSJ": ZooEntry(
        "42025812/model_final_4f7b58.pkl", 46.4, 41.6
    ),
    "new_baselines/mask_rcnn_R_101_FPN_200ep_LSJ": ZooEntry(
        "42131867/model_final_0bb7ae.pkl", 48.0, 43.1
    ),
    "new_baselines/mask_rcnn_R_101_FPN_400ep_LSJ": ZooEntry(
        "42073830/model_final_f96b26.pkl", 48.9, 43.7
    ),
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_100ep_LSJ": ZooEntry(
        "42047771/model_final_b7fbab.pkl", 46.0, 41.3
    ),
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_200ep_LSJ": ZooEntry(
        "42132721/model_final_5d87c1.pkl", 48.1, 43.1
    ),
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_400ep_LSJ": ZooEntry(
        "42025447/model_final_f1362d.pkl", 48.6, 43.5
    ),
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ": ZooEntry(
        "42047784/model_final_6ba57e.pkl", 46.1, 41.6
    ),
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_200ep_LSJ": ZooEntry(
        "42047642/model_final_27b9c1.pkl", 47.8, 43.0
    ),
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ": ZooEntry(
        "42045954/model_final_ef3a80.pkl", 48.2, 43.3
    ),
    # masktron's own models, weights shipped in the package (fp16; trained by `masktron train`
    # with the config as shipped; AP on the DSB2018 val split, not COCO).
    "masktron/mask_rcnn_R18s_FPN_gn_dsb2018": ZooEntry(
        "masktron://weights/mask_rcnn_R18s_FPN_gn_dsb2018.pth", 52.5, 53.9
    ),
}


def _key(config_path: str) -> str:
    return config_path.removesuffix(".yaml").removesuffix(".py")


def list_configs() -> list[str]:
    """Every YAML config file shipped, as names for `get_config_file` (the LazyConfig `.py`
    entries are the keys of `ZOO` under "new_baselines/")."""
    names = []
    for root, _, files in os.walk(CONFIG_DIR):
        for f in files:
            if f.endswith(".yaml") and not f.startswith("Base"):
                names.append(os.path.relpath(os.path.join(root, f), CONFIG_DIR))
    return sorted(names)


def get_config_file(config_path: str) -> str:
    """The absolute path of a shipped config, e.g. "COCO-Detection/retinanet_R_50_FPN_3x.yaml"."""
    path = os.path.join(CONFIG_DIR, config_path)
    if not config_path.endswith((".yaml", ".py")) or not os.path.isfile(path):
        import difflib

        near = difflib.get_close_matches(config_path, list_configs(), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise RuntimeError(f"{config_path} is not in the model zoo{hint}")
    return path


def get_checkpoint_url(config_path: str) -> str:
    """The official URL of the weights trained with a zoo config."""
    entry = ZOO.get(_key(config_path))
    if entry is None:
        raise RuntimeError(f"no trained weights are published for {config_path}")
    if entry.url_suffix.startswith(("masktron://", "/")):
        return entry.url_suffix
    return f"{S3_PREFIX}{_key(config_path)}/{entry.url_suffix}"


def get_config(config_path: str, trained: bool = False) -> Any:
    """The config of a zoo entry; with `trained`, MODEL.WEIGHTS points at its trained weights.

    A `.py` entry (Detectron2's LazyConfig zoo, e.g. `new_baselines/*.py`) is loaded with
    `LazyConfig.load` when shipped, its `train.init_checkpoint` set by `trained`.
    """
    if config_path.endswith(".py"):
        path = get_config_file(config_path)
        from masktron.config import LazyConfig

        lazy = LazyConfig.load(path)
        if trained:
            lazy.train.init_checkpoint = get_checkpoint_url(config_path)
        return lazy
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(config_path))
    if trained:
        cfg.MODEL.WEIGHTS = get_checkpoint_url(config_path)
    return cfg


def get(config_path: str, trained: bool = False, device: str | None = None) -> torch.nn.Module:
    """Build a zoo model and load its weights (trained ones, or the config's initial weights).

    The model is returned in training mode, as Detectron2's `model_zoo.get` does.
    """
    from masktron.checkpoint import DetectionCheckpointer
    from masktron.models.build import build_model

    cfg = get_config(config_path, trained)
    if device is None and not torch.cuda.is_available():
        device = "cpu"
    if config_path.endswith(".py"):  # a LazyConfig: the model is `cfg.model`, instantiated
        from masktron.config import instantiate

        model = instantiate(cfg.model)
        if device is not None:
            model = model.to(device)
        if cfg.train.init_checkpoint:
            DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
        return model
    if device is not None:
        cfg.MODEL.DEVICE = device
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model
