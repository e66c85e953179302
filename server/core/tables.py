"""DynamoDB's side of livecount as plain data: table names, CreateTable definitions,
and what its error codes mean.

Pure, so that the node's store (aioboto3), the Lambda copy (boto3) and the deployment
test (the CloudFormation template) all read the one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from livecount.core.errors import StoreRefused, StoreRejected, StoreUnavailable

if TYPE_CHECKING:  # the Lambda copy ships without pages.py's idna
    from livecount.core.pages import Target

FEED_TTL_ATTRIBUTE: Final = "expires"  # LiveFeed items expire by TTL on this attribute


@dataclass(frozen=True)
class Tables:
    writer: str
    reader: str
    pages: str
    referrers: str
    timeline: str
    index: str
    checkpoints: str
    feed: str

    @classmethod
    def named(cls, prefix: str = "") -> Tables:
        return cls(
            writer=f"{prefix}PostCountWriter",
            reader=f"{prefix}PostCountReader",
            pages=f"{prefix}HomeAndProfile",
            referrers=f"{prefix}Referrer",
            timeline=f"{prefix}Timeline",
            index=f"{prefix}PageIndex",
            checkpoints=f"{prefix}StreamCheckpoint",
            feed=f"{prefix}LiveFeed",
        )

    def count_key(self, target: Target) -> tuple[str, dict[str, Any]]:
        """The table and key of a post's writer item or a page's item."""
        if target.kind == "post":
            return self.writer, {"articleId": {"S": target.id}}
        return self.pages, {"pageName": {"S": target.id}}

    def definitions(self) -> list[dict[str, Any]]:
        """CreateTable requests: the seed's names and keys, on-demand billing."""

        def table(name: str, *keys: tuple[str, str], stream: bool = False) -> dict[str, Any]:
            spec: dict[str, Any] = {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": k, "AttributeType": "S"} for k, _ in keys
                ],
                "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in keys],
            }
            if stream:
                spec["StreamSpecification"] = {
                    "StreamEnabled": True,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                }
            return spec

        return [
            table(self.writer, ("articleId", "HASH"), stream=True),
            table(self.reader, ("articleId", "HASH")),
            table(self.pages, ("pageName", "HASH")),
            table(self.referrers, ("target", "HASH"), ("host", "RANGE")),
            table(self.timeline, ("target", "HASH"), ("hour", "RANGE")),
            table(self.index, ("index", "HASH"), ("target", "RANGE")),
            table(self.checkpoints, ("shardId", "HASH")),
            table(self.feed, ("feed", "HASH"), ("at", "RANGE")),
        ]


# -- what DynamoDB's answers mean -------------------------------------------------------
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# No retry changes these: the operator must fix credentials or policy.
REFUSED_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
    }
)
# Worth another try later: the store is busy, failing on its side, or not ready yet.
# A missing table is here too: it is missing while it is being created, and a slip in
# a deployment must not turn every count into a dead letter.
RETRY_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflictException",
        "TransactionInProgressException",
        "ResourceNotFoundException",
        "ResourceInUseException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredTokenException",
    }
)

StoreErrorClass = type[StoreUnavailable] | type[StoreRefused] | type[StoreRejected]


def error_class(code: str, status: int) -> StoreErrorClass:
    """Which of livecount's store errors an answer with this code and HTTP status is.

    Anything else DynamoDB refuses with a 4xx (ValidationException,
    ItemCollectionSizeLimitExceededException, SerializationException, …) is a request
    that can never succeed as it is: `StoreRejected`, set aside rather than retried.
    """
    if code in REFUSED_CODES:
        return StoreRefused
    if code in RETRY_CODES or status >= 500 or status in (0, 408, 429):
        return StoreUnavailable
    return StoreRejected
