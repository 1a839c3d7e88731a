"""The control API's one error hierarchy: every error it raises on purpose is a ControlApiError.

`ApiError` and its subclasses are answers to a request: the app turns each into its HTTP status and
the JSON body `{"detail": "<sentence>"}` (plus headers such as `Retry-After`). The others are domain
errors that a route translates, or that stop the process at start (settings, migrations).
"""

from __future__ import annotations


class ControlApiError(Exception):
    """Base of every error the control API raises on purpose."""


class SettingsError(ControlApiError):
    """The environment does not describe a runnable control API (raised once, at start)."""


class ApiError(ControlApiError):
    """An answer to the request: HTTP status, a sentence for the client, optional headers."""

    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BodyTooLargeError(ApiError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")


class RateLimitedError(ApiError):
    status_code = 429

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many {what}: retry in {retry_after} s", {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class BusyError(ApiError):
    status_code = 503

    def __init__(self, what: str, retry_after: int = 1) -> None:
        super().__init__(f"{what}: retry in {retry_after} s", {"Retry-After": str(retry_after)})


__all__ = [
    "ApiError",
    "BodyTooLargeError",
    "BusyError",
    "ControlApiError",
    "RateLimitedError",
    "SettingsError",
]
