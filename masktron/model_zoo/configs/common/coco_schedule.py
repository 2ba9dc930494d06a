"""Learning-rate multipliers of Detectron2's COCO schedules (`common/coco_schedule.py`).

"Nx" is N * 90k iterations at 16 images per step (about 12 COCO epochs per x), with a 1000-step
linear warmup from 0.001 and two 10x decays near the end ("Rethinking ImageNet Pre-training",
section 4): at 2/3 and 8/9 of 1x and 2x, 60k and 20k iterations before the end of longer ones.
"""

from masktron.config import LazyCall as L
from masktron.solver import MultiStepParamScheduler, WarmupParamScheduler


def default_X_scheduler(num_X):  # noqa: N802, N803  (Detectron2's name)
    """The multiplier of an `num_X` x schedule (1x = 90k iterations of 16 images)."""
    total_steps_16bs = num_X * 90000
    if num_X <= 2:
        milestones = [60000 * num_X, 80000 * num_X]
    else:
        milestones = [total_steps_16bs - 60000, total_steps_16bs - 20000]
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1, 0.01], milestones=milestones, num_updates=total_steps_16bs
        ),
        warmup_length=1000 / total_steps_16bs,
        warmup_method="linear",
        warmup_factor=0.001,
    )


lr_multiplier_1x = default_X_scheduler(1)
lr_multiplier_2x = default_X_scheduler(2)
lr_multiplier_3x = default_X_scheduler(3)
lr_multiplier_6x = default_X_scheduler(6)
lr_multiplier_9x = default_X_scheduler(9)
