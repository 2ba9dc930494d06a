"""Mask R-CNN R50-FPN trained from scratch for 100 COCO epochs with large-scale jitter
(Detectron2's new baselines; Ghiasi et al. 2021, "Simple Copy-Paste").

Against the classic 3x recipe: no ImageNet initialisation and nothing frozen, synchronised
BatchNorm everywhere (backbone, FPN, RoI heads), two convs in the RPN head, a 4-conv 1-fc box
head, 1024 x 1024 training crops of images rescaled by 0.1..2.0, batches of 64, lr 0.1 with a
500-step warmup. The 50/200/400-epoch files import this one and scale the schedule.

"SyncBN" is `torch.nn.SyncBatchNorm` and "naiveSyncBN_N" masktron's `NaiveSyncBatchNorm`
(Detectron2's names): statistics shared across processes when training distributed, plain
BatchNorm on one process and at inference (so on a CPU).
"""

import masktron.data.transforms as T
from masktron.config import LazyCall as L
from masktron.solver import MultiStepParamScheduler, WarmupParamScheduler

from ..common.data.coco import dataloader
from ..common.models.mask_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

# from scratch, with mixed precision
train.init_checkpoint = ""
train.amp.enabled = True
train.ddp.fp16_compression = True
model.backbone.bottom_up.freeze_at = 0

# synchronised BatchNorm in the backbone, the FPN and the RoI heads' convs; the heads' is
# weighted by batch size, as some processes may have no RoI (NaiveSyncBatchNorm, "N" mode)
model.backbone.bottom_up.stem.norm = "SyncBN"
model.backbone.bottom_up.stages.norm = "SyncBN"
model.backbone.norm = "SyncBN"
model.roi_heads.box_head.conv_norm = "naiveSyncBN_N"
model.roi_heads.mask_head.conv_norm = "naiveSyncBN_N"

# RPN head with two 3x3 convs of the input's width (the TF object-detection reference)
model.proposal_generator.head.conv_dims = [-1, -1]

# "4conv1fc" box head
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]

# large-scale jitter: rescale to 0.1..2.0 of 1024 x 1024, crop (or pad) to 1024 x 1024, flip
image_size = 1024
dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(
        min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size
    ),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size)),
    L(T.RandomFlip)(horizontal=True),
]
# crops cut objects: take their boxes from the cropped masks
dataloader.train.mapper.recompute_boxes = True

dataloader.train.total_batch_size = 64

# 100 epochs of COCO train2017 (118k images) at 64 images per step
train.max_iter = 184375

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[163889, 177546],
        num_updates=train.max_iter,
    ),
    warmup_length=500 / train.max_iter,
    warmup_factor=0.067,
)

optimizer.lr = 0.1
optimizer.weight_decay = 4e-5
