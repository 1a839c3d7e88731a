"""Relaying an upstream SSE stream: the same lines whatever the upstream's chunking, usage chunk and [DONE] handled."""

from __future__ import annotations

import json

import pytest

from clawhost_proxy.sse import SseRelay, StreamMeter


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


WORDS = [_event({"choices": [{"index": 0, "delta": {"content": word}}]}) for word in ("Hel", "lo", "!")]
USAGE = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}})
UPSTREAM = b": keep-alive\n\n" + b"".join(WORDS) + USAGE + b"data: [DONE]\n\n" + b"data: after the end\n\n"


def _relay(chunks: list[bytes], wants_usage: bool) -> tuple[bytes, StreamMeter, bool]:
    meter = StreamMeter()
    relay = SseRelay(meter, wants_usage)
    out = b""
    for chunk in chunks:
        out += relay.feed(chunk)
        if relay.done:
            break
    return out + relay.finish(), meter, relay.done


@pytest.mark.parametrize("size", [1, 2, 7, 50, len(UPSTREAM)])
@pytest.mark.parametrize("wants_usage", [False, True])
def test_any_chunking_gives_the_same_stream(size: int, wants_usage: bool) -> None:
    chunks = [UPSTREAM[i : i + size] for i in range(0, len(UPSTREAM), size)]
    out, meter, done = _relay(chunks, wants_usage)
    # The usage-only event's data line is left out unless asked for; its blank line stays (harmless in SSE).
    expected = b": keep-alive\n\n" + b"".join(WORDS) + (USAGE if wants_usage else b"\n")
    assert out == expected
    assert done, "[DONE] is recognised (and not passed on: the proxy writes it after billing)"
    assert meter.usage == {"prompt_tokens": 3, "completion_tokens": 3}
    assert (meter.chunks, meter.chars) == (3, 6)


def test_a_stream_cut_before_done_keeps_its_last_line() -> None:
    out, meter, done = _relay([WORDS[0], b'data: {"choices": []'], wants_usage=False)
    assert out == WORDS[0] + b'data: {"choices": []'
    assert not done
    assert meter.chunks == 1
