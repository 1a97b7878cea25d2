"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Something wrong with what the user gave us (a file, a config, a model path)."""


class ConfigError(UserError, ValueError):
    """A configuration key or value is unknown or invalid."""


class DataError(UserError, ValueError):
    """A corpus file is missing, misaligned, or not UTF-8."""
