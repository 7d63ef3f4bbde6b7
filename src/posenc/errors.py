"""User-facing errors: the CLI prints them on one line and exits with code 2."""

from __future__ import annotations


class PosencError(Exception):
    """A problem with the user's input (file, shape or setting), not a bug in posenc."""


class PosencWarning(UserWarning):
    """Something posenc did that the caller may not expect (points outside an encoding's domain, a
    progressive policy never updated); the message says what and how to change it."""
