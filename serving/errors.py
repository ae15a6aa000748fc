"""Errors raised by `serving`.

Hierarchy::

    ExperimentError              base of every error this package raises on purpose
    ├── ConfigError              a configuration that cannot run (also ValueError)
    ├── InvalidRequestError      a request the service cannot act on (also ValueError)
    │   └── UploadTooLargeError  an upload over the configured byte limit
    ├── NotFoundError            something a request names does not exist (also LookupError)
    │   ├── UnknownExperimentError
    │   ├── UnknownImageError
    │   ├── UnknownImpressionError
    │   └── UnknownQueryError    a continued query the server no longer holds
    ├── ConflictError            a change that contradicts the current state (a full layer,
    │                            a click id reused for another click, a log dir in use)
    └── UnavailableError         the service cannot answer now
        ├── RankersFailedError   every ranker a request needed failed or timed out
        ├── JournalError         the event log could not be written
        └── OverloadedError      an upload would wait for its embedding past its deadline

Image bytes that are not a usable image raise `rankers.ImageError`. Only `serving.app` turns
these errors into HTTP responses.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "ExperimentError",
    "InvalidRequestError",
    "JournalError",
    "NotFoundError",
    "OverloadedError",
    "RankersFailedError",
    "UnavailableError",
    "UnknownExperimentError",
    "UnknownImageError",
    "UnknownImpressionError",
    "UnknownQueryError",
    "UploadTooLargeError",
]


class ExperimentError(Exception):
    """Base of every error `serving` raises on purpose.

    Attributes:
        reason: What the app counts it as in `braid_refused` (None: its class name).
    """

    reason: str | None = None


class ConfigError(ExperimentError, ValueError):
    """The configuration is invalid; the message names the key."""


class InvalidRequestError(ExperimentError, ValueError):
    """A request the service cannot act on (a missing field, a position not shown, ...)."""


class UploadTooLargeError(InvalidRequestError):
    """An uploaded image is larger than the configured limit."""


class NotFoundError(ExperimentError, LookupError):
    """Something a request names does not exist."""


class UnknownExperimentError(NotFoundError):
    """No experiment has that id."""


class UnknownImageError(NotFoundError):
    """No corpus image has that id."""


class UnknownImpressionError(NotFoundError):
    """No impression with that id was shown (or it is too old to be held)."""


class UnknownQueryError(NotFoundError):
    """A query id to continue that the server does not hold (search again)."""


class ConflictError(ExperimentError):
    """The change contradicts the current state."""


class UnavailableError(ExperimentError):
    """The service cannot answer now; retrying later may work.

    Attributes:
        retry_after: Whole seconds after which a retry may succeed (the Retry-After header).
    """

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RankersFailedError(UnavailableError):
    """Every ranker the request needed failed or timed out."""


class JournalError(UnavailableError):
    """The event log could not be written, so nothing was acknowledged."""


class OverloadedError(UnavailableError):
    """The embedding work already in flight would keep this upload waiting past its limit."""
