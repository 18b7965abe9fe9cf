"""Judging's errors: services raise these; views, commands and the admin turn the domain ones
into messages, and the judge task retries on ``BatchWillRetry``."""

from annotation.exceptions import DomainError


class JudgeRunError(DomainError):
    """A run cannot be started or changed as asked."""


class BatchWillRetry(Exception):
    """The engine failed on a whole batch; the task retries it (attempts are counted)."""
