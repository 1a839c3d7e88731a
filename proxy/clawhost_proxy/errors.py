"""OpenAI-format error responses; `type` tells our limits (clawhost_*) apart from the upstream's."""

from __future__ import annotations

import json

from aiohttp import web


def openai_error(
    status: int, message: str, kind: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
