"""R50-FPN new baseline, 200 epochs: the 100-epoch schedule doubled."""

# ruff: noqa: F401  (the imported names are this config's content)

from .mask_rcnn_R_50_FPN_100ep_LSJ import dataloader, lr_multiplier, model, optimizer, train

train.max_iter *= 2
lr_multiplier.scheduler.milestones = [m * 2 for m in lr_multiplier.scheduler.milestones]
lr_multiplier.scheduler.num_updates = train.max_iter
