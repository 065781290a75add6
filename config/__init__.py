"""Configuration: one pydantic-settings object read from ``O2C_*`` variables."""

from config.settings import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]
