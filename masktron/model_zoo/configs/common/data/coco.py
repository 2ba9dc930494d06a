"""COCO 2017 loaders and evaluator, as a LazyConfig (Detectron2's `common/data/coco.py` keys:
`dataloader.train`, `dataloader.test`, `dataloader.evaluator`).

Training: multi-scale shortest edge in 640..800 (max 1333) and horizontal flips, 16 images
per step; testing: shortest edge 800. The datasets must be registered (`coco_2017_*` are
built in; their files are looked up under `$DETECTRON2_DATASETS`, default `./datasets`).
"""

from omegaconf import OmegaConf

import masktron.data.transforms as T
from masktron.config import LazyCall as L
from masktron.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from masktron.evaluation import COCOEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(
                short_edge_length=(640, 672, 704, 736, 768, 800),
                sample_style="choice",
                max_size=1333,
            ),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="BGR",
        use_instance_mask=True,
    ),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
