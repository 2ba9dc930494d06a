"""Mask R-CNN with a RegNetX-4GF backbone (pycls "dds" design), new-baseline recipe, 100 epochs.

The R50 recipe with the bottom-up network replaced: RegNetX-4GF (23 blocks, widths
80/240/560/1360, group width 40), SyncBN, outputs s1..s4 at strides 4..32 for the FPN.
"""

from masktron.backbones.regnet import RegNet, ResBottleneckBlock, SimpleStem
from masktron.config import LazyCall as L

# ruff: noqa: F401  (the imported names are this config's content)
from .mask_rcnn_R_50_FPN_100ep_LSJ import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up = L(RegNet)(
    stem_class=SimpleStem,
    stem_width=32,
    block_class=ResBottleneckBlock,
    depth=23,
    w_a=38.65,
    w_0=96,
    w_m=2.43,
    group_width=40,
    norm="SyncBN",
    out_features=["s1", "s2", "s3", "s4"],
)
# pycls networks take RGB-std-normalised pixels (in BGR order here)
model.pixel_std = [57.375, 57.120, 58.395]

# convolution algorithms chosen per input shape (cuDNN); ignored on a CPU
train.cudnn_benchmark = True
