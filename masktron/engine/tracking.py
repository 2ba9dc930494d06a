"""Optional metric writers for experiment trackers: Weights & Biases and MLflow.

Named in the config (`LOG_WRITERS: ["wandb"]`, `["mlflow"]`) they are added beside the console,
`metrics.json` and TensorBoard writers. Their packages are optional extras
(`pip install 'masktron[wandb]'`, `'masktron[mlflow]'`) and are imported only when a writer is
built, never by `import masktron`. The run is named after `OUTPUT_DIR`; its config is logged
as the run's parameters. Set up credentials and the project as the tracker documents
(`WANDB_PROJECT`, `MLFLOW_TRACKING_URI`, ...).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from masktron.engine.events import EventStorage, EventWriter

__all__ = ["MLflowWriter", "WandbWriter", "build_tracking_writer"]


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"LOG_WRITERS names {extra!r}, which needs the {module} package: "
            f"pip install 'masktron[{extra}]'"
        ) from None


class _TrackerWriter(EventWriter):
    """Sends the scalars recorded since its last write, smoothed as `metrics.json` has them."""

    def __init__(self, window_size: int = 20):
        self._window_size = window_size
        self._last_write = -1

    def _new_scalars(self, storage: EventStorage) -> dict[int, dict[str, float]]:
        by_iter: dict[int, dict[str, float]] = {}
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                by_iter.setdefault(itr, {})[name] = value
        if by_iter:
            self._last_write = max(by_iter)
        return by_iter

    def on_train_start(self, start_iter: int) -> None:
        self._last_write = start_iter - 1


class WandbWriter(_TrackerWriter):
    """Scalars to a Weights & Biases run (`wandb.init(**init_kwargs)`)."""

    def __init__(self, window_size: int = 20, **init_kwargs: Any):
        super().__init__(window_size)
        self._wandb = _import("wandb", "wandb")
        self._run = self._wandb.init(**init_kwargs)

    def write(self, storage: EventStorage) -> None:
        for itr, scalars in sorted(self._new_scalars(storage).items()):
            self._run.log(scalars, step=itr)

    def close(self) -> None:
        self._run.finish()


class MLflowWriter(_TrackerWriter):
    """Scalars to an MLflow run (`mlflow.start_run(run_name=...)`); `params` are logged once."""

    def __init__(self, window_size: int = 20, run_name: str | None = None, params=None):
        super().__init__(window_size)
        self._mlflow = _import("mlflow", "mlflow")
        self._run = self._mlflow.start_run(run_name=run_name)
        if params:
            self._mlflow.log_params(params)

    def write(self, storage: EventStorage) -> None:
        for itr, scalars in sorted(self._new_scalars(storage).items()):
            # MLflow keys allow letters, digits, "_-./ " only.
            clean = {k.replace("@", "_at_"): v for k, v in scalars.items()}
            self._mlflow.log_metrics(clean, step=itr)

    def close(self) -> None:
        self._mlflow.end_run()


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:250]  # MLflow's parameter value limit is 500
    return flat


def build_tracking_writer(name: str, output_dir: str, config: Mapping[str, Any]) -> EventWriter:
    """The writer named `name` ("wandb" or "mlflow") for the run in `output_dir`."""
    run_name = os.path.basename(os.path.abspath(output_dir)) if output_dir else None
    if name == "wandb":
        return WandbWriter(name=run_name, dir=output_dir or None, config=dict(config))
    if name == "mlflow":
        return MLflowWriter(run_name=run_name, params=_flat(config))
    raise ValueError(f"LOG_WRITERS: unknown writer {name!r}; choose from 'wandb', 'mlflow'")
