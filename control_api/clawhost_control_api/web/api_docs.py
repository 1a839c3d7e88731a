"""The interactive API docs page (Swagger UI) under a Content-Security-Policy of its own.

Swagger UI is the one page the site does not serve itself: FastAPI loads it from jsDelivr and starts it with an
inline script. Its policy allows that CDN and exactly that script (by its hash), nothing else inline; the site's
own pages keep the strict policy (`security_headers.SITE_CSP`)."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

DOCS_PATH = "/docs"
_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_router(openapi_url: str, title: str) -> APIRouter:
    page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI")
    html = bytes(page.body).decode()
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    policy = (
        f"default-src 'none'; script-src {_CDN} {hashes}; style-src {_CDN} 'unsafe-inline'; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    return router
