"""The project's own errors.

Every error that the book raises on purpose, because an input is wrong or something it needs is
missing, derives from :class:`BookError` and carries a message that names the bad input and what
is accepted instead.  The command line prints that message and exits with status 2, without a
traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class BookError(Exception):
    """A problem with the user's input or environment, explained by its message."""


class ParameterError(BookError, ValueError):
    """An unknown profile, chapter or parameter, or a value out of range."""


class SourceUnavailable(BookError, RuntimeError):
    """A model source that cannot be loaded here (e.g. weights not cached and the hub unreachable)."""


class CorruptArtifact(BookError, RuntimeError):
    """A cached artifact whose files do not match their recorded checksums."""


class MissingRun(BookError, FileNotFoundError):
    """A training run that an analysis needs has not been trained yet."""


class BuildBusy(BookError, RuntimeError):
    """Another process holds the lock of the build a command would write into."""


class MissingBuild(BookError, FileNotFoundError):
    """A build (a profile's executed chapters and their recorded verdicts) that does not exist yet."""
