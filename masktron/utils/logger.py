"""Detectron2's `detectron2.utils.logger` import path (code in masktron.engine)."""

from masktron.engine.log_utils import log_every_n, log_every_n_seconds, log_first_n  # noqa: F401
from masktron.engine.logger import setup_logger  # noqa: F401
from masktron.evaluation.table import create_small_table  # noqa: F401
