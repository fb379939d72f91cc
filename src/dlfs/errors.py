"""Errors that the command line reports as one clear paragraph, never a traceback."""


class DlfsError(Exception):
    """A problem the user can fix. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(DlfsError):
    """Bad arguments: an unknown topic number, a topic that is not built yet."""

    exit_code = 2


class NotBuiltError(DlfsError):
    """A topic or milestone that exists in the roadmap but is not built yet."""

    exit_code = 3


class DataError(DlfsError):
    """A dataset is missing, corrupt, truncated or failed its checksum."""

    exit_code = 4
