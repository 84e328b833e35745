"""Errors that rmaplab reports to its user as one line (never a traceback)."""

from __future__ import annotations


class RmaplabError(Exception):
    """Base of the errors the CLI prints as one line and exits with status 2."""


class ScenarioError(RmaplabError):
    """Bad input in a scenario (or trace, or workload) file.

    ``str(err)`` is ``FILE:LINE: problem``, the one line the CLI prints.
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        # picklable, so that a worker process can send it back to the pool
        return (type(self), (self.path, self.line, self.message))


class UsageError(RmaplabError):
    """A bad command-line option or argument."""


class KernelUnavailable(RmaplabError):
    """The live kernel cannot be measured here (not root, no slab sysfs...)."""
