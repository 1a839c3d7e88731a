"""`KubeError`: the one error a Kubernetes call raises, whether the API server refused or could not be reached."""

from __future__ import annotations

import json

UNREACHABLE = 0  # the status of a failure with no answer: refused connection, reset, timeout, TLS failure


class KubeError(Exception):
    """A failed call. `status` is the HTTP status of the API server's answer, or 0 when there was none.

    `message` is the API server's explanation (field paths and rules; the API server never quotes Secret data
    back) or, for a network failure, the kind of failure. Neither ever holds a credential.
    """

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status}: {reason}" + (f": {message}" if message else ""))
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def unreachable(self) -> bool:
        return self.status == UNREACHABLE

    @classmethod
    def from_answer(cls, status: int, reason: str, body: bytes) -> KubeError:
        """The error for a non-2xx answer; the reason and message come from its `Status` body when it has one."""
        message = ""
        try:
            problem = json.loads(body)
            if isinstance(problem, dict):
                reason = str(problem.get("reason") or reason)
                message = str(problem.get("message") or "")
        except ValueError:
            pass
        return cls(status, reason, message)

    @classmethod
    def from_failure(cls, error: BaseException) -> KubeError:
        """The error for a request that got no answer (a socket or TLS error's own words hold no header)."""
        return cls(UNREACHABLE, "Unreachable", f"{type(error).__name__}: {error}"[:300])
