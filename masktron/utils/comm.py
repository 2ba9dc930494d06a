"""Detectron2's `detectron2.utils.comm` import path; the code is in masktron.engine.comm."""

from masktron.engine.comm import (  # noqa: F401
    all_gather,
    broadcast_object,
    gather,
    get_local_rank,
    get_local_size,
    get_rank,
    get_world_size,
    is_main_process,
    reduce_dict,
    shared_random_seed,
    synchronize,
)
