"""What can go wrong when starting or stopping the stack."""

from __future__ import annotations


class StackError(Exception):
    """Something the user must fix or look at; the message says what."""


class StartFailed(StackError):
    """Some processes did not come up; `names` says which."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C, SIGTERM) while the stack was starting."""
