"""Every error livecount reports, with the stable `code` a client or operator sees.

Kept apart the way h11 keeps local and remote errors apart: a *client* mistake is
answered and forgotten; the *store* being away is `unavailable` and retried; the
store *refusing* a value is set aside (dead letters); anything else is a bug in
livecount, logged with its traceback and answered `internal`, never disguised as
`unavailable`.
"""

from __future__ import annotations


class LivecountError(Exception):
    """An expected failure with a stable, documented code."""

    code = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ClientError(LivecountError):
    """The client sent something livecount will not take; the message says what would do."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class Busy(LivecountError):
    """Too many views wait for the store; refusing is honest, counting them is not."""

    code = "busy"


class TooManySubscriptions(LivecountError):
    code = "too_many_subscriptions"


class TooManyPages(LivecountError):
    """The site lists `--max-pages` posts and pages already: a new one is not counted."""

    code = "too_many_pages"


class Unavailable(LivecountError):
    """Counts cannot be read or recorded right now; nothing was counted. Retry later."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    """DynamoDB did not answer, throttled, or failed on its side: a retry may succeed."""


class JournalUnavailable(Unavailable):
    """The journal could not write or fsync: a view that is not on disk is not counted."""


class StoreRejected(LivecountError):
    """DynamoDB refused a request as invalid: no retry can succeed, so it is set aside."""

    code = "rejected"


class StoreRefused(LivecountError):
    """Credentials or policy are wrong: retrying cannot help, so say so and stop."""

    code = "refused"
