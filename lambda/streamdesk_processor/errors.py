"""Errors the business logic raises to say how a request ends.

* :class:`BusinessError`: permanent. The request ends FAILED at once with the error recorded.
* :class:`TransientError`: worth retrying (a timeout, a throttled dependency). The request goes back to
  PENDING and the stream record is reported as a batch item failure, so the trigger re-sends it; it ends
  FAILED only when the retries are spent.

Anything else a step raises is a bug: it is retried like a transient error (the error is kept on the item
as ``lastError``, and as ``error`` once the retries are spent), flagged ``transient: false``.
"""

from __future__ import annotations


class StreamdeskError(Exception):
    """Base of the errors the business logic raises on purpose."""

    #: Recorded as the error's ``type``; subclasses may set a friendlier name than the class name.
    type_name: str | None = None

    @property
    def error_type(self) -> str:
        return self.type_name or type(self).__name__


class BusinessError(StreamdeskError):
    """A permanent failure: the request cannot succeed however often it is tried."""


class InvalidRequestError(BusinessError):
    """The stored request is not a JSON object (the API rejects such bodies; a direct write may not)."""

    type_name = "InvalidRequest"


class TransientError(StreamdeskError):
    """A failure that may go away by itself: retried automatically up to the trigger's retry limit."""


class ConfigError(ValueError):
    """The function's environment is missing a setting or holds an invalid one."""
