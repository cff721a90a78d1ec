"""Settings: one validated schema, loaded with errors that name the field and the rule."""

from app.config.load import ConfigError, describe_validation_error, load_config, parse_config
from app.config.schema import (
    DEFAULT_SYMBOLS,
    BackendConfig,
    BackfillConfig,
    CacheConfig,
    ClientConfig,
    PoolConfig,
    TerminalConfig,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "BackendConfig",
    "BackfillConfig",
    "CacheConfig",
    "ClientConfig",
    "ConfigError",
    "PoolConfig",
    "TerminalConfig",
    "describe_validation_error",
    "load_config",
    "parse_config",
]
