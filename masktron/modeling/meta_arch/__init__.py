"""Detectron2's `detectron2.modeling.meta_arch` import path."""

from masktron.models.build import build_model
from masktron.models.build_dense import build_sem_seg_head
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.proposal_network import ProposalNetwork
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.registry import META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY
from masktron.models.retinanet import RetinaNet
from masktron.models.sem_seg_head import SemSegFPNHead

__all__ = [
    "META_ARCH_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "GeneralizedRCNN",
    "PanopticFPN",
    "ProposalNetwork",
    "RetinaNet",
    "SemSegFPNHead",
    "build_model",
    "build_sem_seg_head",
]
