"""Configuration: Detectron2's key names and YAML files over a typed schema."""

from masktron.config.compat import downgrade_config, upgrade_config
from masktron.config.config import (
    CfgNode,
    ConfigError,
    UnknownKeyError,
    get_cfg,
    load_yaml_with_base,
)
from masktron.config.configurable import configurable
from masktron.config.instantiate import LazyCall, instantiate
from masktron.config.lazy import LazyConfig

__all__ = [
    "CfgNode",
    "ConfigError",
    "LazyCall",
    "LazyConfig",
    "UnknownKeyError",
    "configurable",
    "downgrade_config",
    "get_cfg",
    "instantiate",
    "load_yaml_with_base",
    "upgrade_config",
]
