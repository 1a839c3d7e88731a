"""The one error body every failure answers with, and its OpenAPI documentation per status code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """`detail` is a sentence, or the list of invalid fields (never the submitted values)."""

    detail: str | list[FieldError]


_DESCRIPTIONS = {
    400: "Malformed or unverifiable request",
    401: "Missing, invalid, expired or revoked token",
    404: "Not found (for agent routes: you have no agent yet)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many requests: retry after the Retry-After header's seconds",
    502: "The cluster or Stripe refused the change",
    503: "A dependency is not configured or busy (retry after Retry-After when given)",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes (and 413: every route limits its body), each an ErrorBody."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in sorted({*codes, 413})}
