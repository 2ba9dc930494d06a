"""Configuration: Detectron2's key names and YAML files over a typed schema."""

from masktron.config.config import (
    CfgNode,
    ConfigError,
    UnknownKeyError,
    get_cfg,
    load_yaml_with_base,
)

__all__ = ["CfgNode", "ConfigError", "UnknownKeyError", "get_cfg", "load_yaml_with_base"]
