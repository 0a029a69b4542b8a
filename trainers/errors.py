"""User-facing errors: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user (config, data, paths): the message says what, where and how to fix."""


class ConfigError(UserError, ValueError):
    """A setting is invalid; the message names the key and the allowed values."""


class DataError(UserError, ValueError):
    """Input data is missing or malformed; the message names the file or key."""
