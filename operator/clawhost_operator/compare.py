"""Does the live object already hold everything we want? (Extra fields set by others or by defaults are fine.)"""

from __future__ import annotations

from typing import Any


def contains(live: Any, desired: Any) -> bool:
    """True when every field of `desired` is present in `live` with an equal value (lists element-wise)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        # The API server drops empty lists and maps (omitempty): a missing key equals an empty one.
        return all(contains(live[key], value) if key in live else value in ([], {}) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(live_item, item) for live_item, item in zip(live, desired, strict=True))
    return bool(live == desired)
