"""The search service's errors: the API maps them to 422 and 404, the CLI to a message."""

from __future__ import annotations


class QueryError(ValueError):
    """A query that cannot be run as given; the message tells the caller what to change."""


class NotFoundError(LookupError):
    """A product id the store does not hold."""


class PayloadTooLargeError(QueryError):
    """The query is over a size limit (a photo with too many pixels): the API answers 413."""
