"""Detectron2's `detectron2.utils.events` import path; the code is in masktron.engine.events."""

from masktron.engine.events import (  # noqa: F401
    CommonMetricPrinter,
    EventStorage,
    EventWriter,
    HistoryBuffer,
    JSONWriter,
    TensorboardXWriter,
    get_event_storage,
    has_event_storage,
)
from masktron.engine.events import TensorboardXWriter as TensorBoardXWriter  # noqa: F401
