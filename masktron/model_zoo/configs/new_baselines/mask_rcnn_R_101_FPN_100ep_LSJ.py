"""Mask R-CNN R101-FPN new baseline, 100 epochs: the R50 recipe with a 101-layer ResNet."""

# ruff: noqa: F401  (the imported names are this config's content)

from .mask_rcnn_R_50_FPN_100ep_LSJ import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101
