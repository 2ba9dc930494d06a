"""Typed schema of every configuration key, with Detectron2's names and default values.

Each dataclass is one node of the tree that `get_cfg()` returns. Key names and defaults follow
Detectron2 v0.6 (`detectron2/config/defaults.py`), so its YAML files and users' overrides load
unchanged; a few keys of our own (marked "masktron:") extend the trainer. Types are enforced by
OmegaConf when a file or a list of overrides is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _list(*values: Any) -> Any:
    """A dataclass default that is a fresh list on every instance."""
    return field(default_factory=lambda: list(values))


@dataclass
class CropConfig:
    ENABLED: bool = False
    # "relative_range", "relative", "absolute" or "absolute_range" (Detectron2's RandomCrop types).
    TYPE: str = "relative_range"
    SIZE: list[float] = _list(0.9, 0.9)


@dataclass
class InputConfig:
    MIN_SIZE_TRAIN: list[int] = _list(800)
    MIN_SIZE_TRAIN_SAMPLING: str = "choice"
    MAX_SIZE_TRAIN: int = 1333
    MIN_SIZE_TEST: int = 800
    MAX_SIZE_TEST: int = 1333
    RANDOM_FLIP: str = "horizontal"
    CROP: CropConfig = field(default_factory=CropConfig)
    FORMAT: str = "BGR"
    MASK_FORMAT: str = "polygon"


@dataclass
class DatasetsConfig:
    TRAIN: list[str] = _list()
    PROPOSAL_FILES_TRAIN: list[str] = _list()
    PRECOMPUTED_PROPOSAL_TOPK_TRAIN: int = 2000
    TEST: list[str] = _list()
    PROPOSAL_FILES_TEST: list[str] = _list()
    PRECOMPUTED_PROPOSAL_TOPK_TEST: int = 1000
    # masktron: datasets whose loss is measured by the validation-loss hook (empty: none).
    VAL: list[str] = _list()
    # masktron: datasets registered from files by `masktron train` (--coco-dataset, ...), as
    # specs ({format, name, paths, classes}); predict/eval/export register them again.
    REGISTER: list[dict[str, Any]] = _list()
    # masktron: the class names the model was trained on (contiguous-id order) and each one's
    # category id in the dataset (written by `masktron train`; labels and results use them).
    THING_CLASSES: list[str] = _list()
    THING_DATASET_IDS: list[int] = _list()


@dataclass
class DataloaderConfig:
    NUM_WORKERS: int = 4
    ASPECT_RATIO_GROUPING: bool = True
    SAMPLER_TRAIN: str = "TrainingSampler"
    REPEAT_THRESHOLD: float = 0.0
    FILTER_EMPTY_ANNOTATIONS: bool = True


@dataclass
class BackboneConfig:
    NAME: str = "build_resnet_backbone"
    FREEZE_AT: int = 2


@dataclass
class FPNConfig:
    IN_FEATURES: list[str] = _list()
    OUT_CHANNELS: int = 256
    NORM: str = ""
    FUSE_TYPE: str = "sum"


@dataclass
class ProposalGeneratorConfig:
    NAME: str = "RPN"
    MIN_SIZE: int = 0


@dataclass
class AnchorGeneratorConfig:
    NAME: str = "DefaultAnchorGenerator"
    # One list per feature level, or one list (or a flat list of numbers) for every level.
    SIZES: list[Any] = _list([32.0, 64.0, 128.0, 256.0, 512.0])
    ASPECT_RATIOS: list[Any] = _list([0.5, 1.0, 2.0])
    ANGLES: list[list[float]] = _list([-90.0, 0.0, 90.0])
    OFFSET: float = 0.0


@dataclass
class RPNConfig:
    HEAD_NAME: str = "StandardRPNHead"
    IN_FEATURES: list[str] = _list("res4")
    BOUNDARY_THRESH: int = -1
    IOU_THRESHOLDS: list[float] = _list(0.3, 0.7)
    IOU_LABELS: list[int] = _list(0, -1, 1)
    BATCH_SIZE_PER_IMAGE: int = 256
    POSITIVE_FRACTION: float = 0.5
    BBOX_REG_LOSS_TYPE: str = "smooth_l1"
    BBOX_REG_LOSS_WEIGHT: float = 1.0
    BBOX_REG_WEIGHTS: list[float] = _list(1.0, 1.0, 1.0, 1.0)
    SMOOTH_L1_BETA: float = 0.0
    LOSS_WEIGHT: float = 1.0
    PRE_NMS_TOPK_TRAIN: int = 12000
    PRE_NMS_TOPK_TEST: int = 6000
    POST_NMS_TOPK_TRAIN: int = 2000
    POST_NMS_TOPK_TEST: int = 1000
    NMS_THRESH: float = 0.7
    CONV_DIMS: list[int] = _list(-1)


@dataclass
class ROIHeadsConfig:
    NAME: str = "Res5ROIHeads"
    NUM_CLASSES: int = 80
    IN_FEATURES: list[str] = _list("res4")
    IOU_THRESHOLDS: list[float] = _list(0.5)
    IOU_LABELS: list[int] = _list(0, 1)
    BATCH_SIZE_PER_IMAGE: int = 512
    POSITIVE_FRACTION: float = 0.25
    SCORE_THRESH_TEST: float = 0.05
    NMS_THRESH_TEST: float = 0.5
    PROPOSAL_APPEND_GT: bool = True


@dataclass
class ROIBoxHeadConfig:
    NAME: str = ""
    BBOX_REG_LOSS_TYPE: str = "smooth_l1"
    BBOX_REG_LOSS_WEIGHT: float = 1.0
    BBOX_REG_WEIGHTS: list[float] = _list(10.0, 10.0, 5.0, 5.0)
    SMOOTH_L1_BETA: float = 0.0
    POOLER_RESOLUTION: int = 14
    POOLER_SAMPLING_RATIO: int = 0
    POOLER_TYPE: str = "ROIAlignV2"
    NUM_FC: int = 0
    FC_DIM: int = 1024
    NUM_CONV: int = 0
    CONV_DIM: int = 256
    NORM: str = ""
    CLS_AGNOSTIC_BBOX_REG: bool = False
    TRAIN_ON_PRED_BOXES: bool = False
    USE_FED_LOSS: bool = False
    USE_SIGMOID_CE: bool = False
    FED_LOSS_FREQ_WEIGHT_POWER: float = 0.5
    FED_LOSS_NUM_CLASSES: int = 50


@dataclass
class ROIBoxCascadeHeadConfig:
    BBOX_REG_WEIGHTS: list[list[float]] = _list(
        [10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]
    )
    IOUS: list[float] = _list(0.5, 0.6, 0.7)


@dataclass
class ROIMaskHeadConfig:
    NAME: str = "MaskRCNNConvUpsampleHead"
    POOLER_RESOLUTION: int = 14
    POOLER_SAMPLING_RATIO: int = 0
    NUM_CONV: int = 0
    CONV_DIM: int = 256
    NORM: str = ""
    CLS_AGNOSTIC_MASK: bool = False
    POOLER_TYPE: str = "ROIAlignV2"


@dataclass
class ROIKeypointHeadConfig:
    NAME: str = "KRCNNConvDeconvUpsampleHead"
    POOLER_RESOLUTION: int = 14
    POOLER_SAMPLING_RATIO: int = 0
    CONV_DIMS: list[int] = _list(*([512] * 8))
    NUM_KEYPOINTS: int = 17
    MIN_KEYPOINTS_PER_IMAGE: int = 1
    NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS: bool = True
    LOSS_WEIGHT: float = 1.0
    POOLER_TYPE: str = "ROIAlignV2"


@dataclass
class SemSegHeadConfig:
    NAME: str = "SemSegFPNHead"
    IN_FEATURES: list[str] = _list("p2", "p3", "p4", "p5")
    IGNORE_VALUE: int = 255
    # 53 COCO stuff classes plus one "things" class.
    NUM_CLASSES: int = 54
    CONVS_DIM: int = 128
    COMMON_STRIDE: int = 4
    NORM: str = "GN"
    LOSS_WEIGHT: float = 1.0


@dataclass
class PanopticCombineConfig:
    ENABLED: bool = True
    OVERLAP_THRESH: float = 0.5
    STUFF_AREA_LIMIT: int = 4096
    INSTANCES_CONFIDENCE_THRESH: float = 0.5


@dataclass
class PanopticFPNConfig:
    INSTANCE_LOSS_WEIGHT: float = 1.0
    COMBINE: PanopticCombineConfig = field(default_factory=PanopticCombineConfig)


@dataclass
class RetinaNetConfig:
    NUM_CLASSES: int = 80
    IN_FEATURES: list[str] = _list("p3", "p4", "p5", "p6", "p7")
    NUM_CONVS: int = 4
    IOU_THRESHOLDS: list[float] = _list(0.4, 0.5)
    IOU_LABELS: list[int] = _list(0, -1, 1)
    PRIOR_PROB: float = 0.01
    SCORE_THRESH_TEST: float = 0.05
    TOPK_CANDIDATES_TEST: int = 1000
    NMS_THRESH_TEST: float = 0.5
    BBOX_REG_WEIGHTS: list[float] = _list(1.0, 1.0, 1.0, 1.0)
    FOCAL_LOSS_GAMMA: float = 2.0
    FOCAL_LOSS_ALPHA: float = 0.25
    SMOOTH_L1_LOSS_BETA: float = 0.1
    BBOX_REG_LOSS_TYPE: str = "smooth_l1"
    NORM: str = ""


@dataclass
class ResNetsConfig:
    DEPTH: int = 50
    OUT_FEATURES: list[str] = _list("res4")
    NUM_GROUPS: int = 1
    # "FrozenBN", "BN", "SyncBN", "GN" or "" (no normalisation).
    NORM: str = "FrozenBN"
    WIDTH_PER_GROUP: int = 64
    STRIDE_IN_1X1: bool = True
    RES5_DILATION: int = 1
    RES2_OUT_CHANNELS: int = 256
    STEM_OUT_CHANNELS: int = 64
    DEFORM_ON_PER_STAGE: list[bool] = _list(False, False, False, False)
    DEFORM_MODULATED: bool = False
    DEFORM_NUM_GROUPS: int = 1


@dataclass
class ModelConfig:
    LOAD_PROPOSALS: bool = False
    MASK_ON: bool = False
    KEYPOINT_ON: bool = False
    DEVICE: str = "cuda"
    META_ARCHITECTURE: str = "GeneralizedRCNN"
    WEIGHTS: str = ""
    PIXEL_MEAN: list[float] = _list(103.530, 116.280, 123.675)
    PIXEL_STD: list[float] = _list(1.0, 1.0, 1.0)
    BACKBONE: BackboneConfig = field(default_factory=BackboneConfig)
    FPN: FPNConfig = field(default_factory=FPNConfig)
    PROPOSAL_GENERATOR: ProposalGeneratorConfig = field(default_factory=ProposalGeneratorConfig)
    ANCHOR_GENERATOR: AnchorGeneratorConfig = field(default_factory=AnchorGeneratorConfig)
    RPN: RPNConfig = field(default_factory=RPNConfig)
    ROI_HEADS: ROIHeadsConfig = field(default_factory=ROIHeadsConfig)
    ROI_BOX_HEAD: ROIBoxHeadConfig = field(default_factory=ROIBoxHeadConfig)
    ROI_BOX_CASCADE_HEAD: ROIBoxCascadeHeadConfig = field(default_factory=ROIBoxCascadeHeadConfig)
    ROI_MASK_HEAD: ROIMaskHeadConfig = field(default_factory=ROIMaskHeadConfig)
    ROI_KEYPOINT_HEAD: ROIKeypointHeadConfig = field(default_factory=ROIKeypointHeadConfig)
    SEM_SEG_HEAD: SemSegHeadConfig = field(default_factory=SemSegHeadConfig)
    PANOPTIC_FPN: PanopticFPNConfig = field(default_factory=PanopticFPNConfig)
    RETINANET: RetinaNetConfig = field(default_factory=RetinaNetConfig)
    RESNETS: ResNetsConfig = field(default_factory=ResNetsConfig)
    # masktron: inference precision of DefaultPredictor / `masktron predict`: "fp32", "bf16"
    # (backbone and heads' hidden layers in bfloat16, the rest fp32; docs/speed.md) or "fp16"
    # (CUDA only). Opt-in: "fp32" gives the exact float32 outputs.
    PRECISION: str = "fp32"
    # masktron: DefaultPredictor / `masktron predict` run convolutions channels-last (NHWC),
    # faster on CPUs (oneDNN) and GPUs (tensor cores); outputs move by float32 rounding only
    # (masktron.models.channels_last, docs/speed.md). False keeps the (N, C, H, W) layout.
    CHANNELS_LAST: bool = True


@dataclass
class ClipGradientsConfig:
    ENABLED: bool = False
    # "value" clips each element, "norm" clips each parameter's gradient norm (Detectron2).
    CLIP_TYPE: str = "value"
    CLIP_VALUE: float = 1.0
    NORM_TYPE: float = 2.0


@dataclass
class AMPConfig:
    ENABLED: bool = False


@dataclass
class SolverConfig:
    LR_SCHEDULER_NAME: str = "WarmupMultiStepLR"
    MAX_ITER: int = 40000
    BASE_LR: float = 0.001
    BASE_LR_END: float = 0.0
    MOMENTUM: float = 0.9
    NESTEROV: bool = False
    WEIGHT_DECAY: float = 0.0001
    WEIGHT_DECAY_NORM: float = 0.0
    GAMMA: float = 0.1
    STEPS: list[int] = _list(30000)
    NUM_DECAYS: int = 3
    WARMUP_FACTOR: float = 1.0 / 1000
    WARMUP_ITERS: int = 1000
    WARMUP_METHOD: str = "linear"
    RESCALE_INTERVAL: bool = False
    CHECKPOINT_PERIOD: int = 5000
    IMS_PER_BATCH: int = 16
    REFERENCE_WORLD_SIZE: int = 0
    BIAS_LR_FACTOR: float = 1.0
    WEIGHT_DECAY_BIAS: float | None = None
    CLIP_GRADIENTS: ClipGradientsConfig = field(default_factory=ClipGradientsConfig)
    AMP: AMPConfig = field(default_factory=AMPConfig)
    # masktron: "SGD" or "AdamW".
    OPTIMIZER: str = "SGD"
    # masktron: how many periodic checkpoints to keep (0 keeps all).
    MAX_TO_KEEP: int = 0
    # masktron: store model_final_weights.pth (the weights alone) in float16.
    FINAL_WEIGHTS_FP16: bool = False


@dataclass
class TestAugConfig:
    ENABLED: bool = False
    MIN_SIZES: list[int] = _list(400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
    MAX_SIZE: int = 4000
    FLIP: bool = True


@dataclass
class PreciseBNConfig:
    ENABLED: bool = False
    NUM_ITER: int = 200


@dataclass
class EarlyStopConfig:
    """masktron: stop training when the tracked metric has not improved for PATIENCE evaluations."""

    ENABLED: bool = False
    PATIENCE: int = 5


@dataclass
class TestConfig:
    EXPECTED_RESULTS: list[Any] = _list()
    EVAL_PERIOD: int = 0
    KEYPOINT_OKS_SIGMAS: list[float] = _list()
    DETECTIONS_PER_IMAGE: int = 100
    AUG: TestAugConfig = field(default_factory=TestAugConfig)
    PRECISE_BN: PreciseBNConfig = field(default_factory=PreciseBNConfig)
    # masktron: metric that decides the best checkpoint ("" = none), e.g. "segm/AP" or "-val_loss".
    BEST_METRIC: str = ""
    EARLY_STOP: EarlyStopConfig = field(default_factory=EarlyStopConfig)


@dataclass
class TrackerHeadsConfig:
    """Detectron2's `TRACKER_HEADS` keys (its trackers read them), plus masktron's ByteTracker."""

    TRACKER_NAME: str = "ByteTracker"
    VIDEO_HEIGHT: int = 0  # masktron: 0 = the first frame's size
    VIDEO_WIDTH: int = 0
    MAX_NUM_INSTANCES: int = 200
    MAX_LOST_FRAME_COUNT: int = 0
    MIN_BOX_REL_DIM: float = 0.02
    MIN_INSTANCE_PERIOD: int = 1
    TRACK_IOU_THRESHOLD: float = 0.5
    # masktron: "box" or "mask" IoU for association (every tracker)
    MATCH_METRIC: str = "box"
    # masktron: ByteTracker's arguments (ByteTrack's / Ultralytics' bytetrack.yaml defaults)
    TRACK_HIGH_THRESH: float = 0.5
    TRACK_LOW_THRESH: float = 0.1
    NEW_TRACK_THRESH: float = 0.6
    MATCH_THRESH: float = 0.8
    TRACK_BUFFER: int = 30
    FRAME_RATE: float = 30.0
    FUSE_SCORE: bool = True


@dataclass
class GlobalConfig:
    HACK: float = 1.0


@dataclass
class Config:
    """The root node: `get_cfg()` returns a `CfgNode` over an instance of this."""

    VERSION: int = 2
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    INPUT: InputConfig = field(default_factory=InputConfig)
    DATASETS: DatasetsConfig = field(default_factory=DatasetsConfig)
    DATALOADER: DataloaderConfig = field(default_factory=DataloaderConfig)
    SOLVER: SolverConfig = field(default_factory=SolverConfig)
    TEST: TestConfig = field(default_factory=TestConfig)
    OUTPUT_DIR: str = "./output"
    SEED: int = -1
    CUDNN_BENCHMARK: bool = False
    FLOAT32_PRECISION: str = ""
    VIS_PERIOD: int = 0
    # masktron: iterations between metric writes (log line, metrics.json, TensorBoard).
    LOG_PERIOD: int = 20
    # masktron: experiment trackers that also get the metrics: "wandb", "mlflow" (extras).
    LOG_WRITERS: list[str] = _list()
    GLOBAL: GlobalConfig = field(default_factory=GlobalConfig)
    TRACKER_HEADS: TrackerHeadsConfig = field(default_factory=TrackerHeadsConfig)
