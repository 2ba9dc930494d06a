"""Model zoo: shipped configs and the URLs and published figures of trained weights."""

from masktron.model_zoo.model_zoo import (
    ZOO,
    ZooEntry,
    get,
    get_checkpoint_url,
    get_config,
    get_config_file,
    list_configs,
)

__all__ = [
    "ZOO",
    "ZooEntry",
    "get",
    "get_checkpoint_url",
    "get_config",
    "get_config_file",
    "list_configs",
]
