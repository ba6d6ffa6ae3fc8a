"""The small error hierarchy of hpcopt.

Errors a user can fix (a bad config, a file that is not a run file) derive from
``HpcoptError`` and are reported by the command line as one line, exit status 2.
Anything else is a bug and is fatal.
"""


class HpcoptError(Exception):
    """Base of every error that is the user's to fix."""


class ConfigError(ValueError, HpcoptError):
    """A configuration value is missing, unknown or invalid.

    ``where`` names the field (``optimizer.population``) or the file.
    """

    def __init__(self, where, message):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


class RunFileError(HpcoptError):
    """A run file cannot be used: not ours, wrong layout version, empty, ..."""
