"""GET /ws/onboarding (WebSocket): the onboarding chat, for pages of the site's own origin only."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from clawhost_control_api.api.client_ip import client_ip
from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.config import site_origins
from clawhost_control_api.journey.relay import Relay

router = APIRouter()
log = logging.getLogger(__name__)

ONBOARDING_SOCKET_PATH = "/ws/onboarding"


@router.websocket(ONBOARDING_SOCKET_PATH)
async def onboarding_socket(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.clawhost
    # Cross-site WebSocket hijacking: a browser sends its cookies with any page's WebSocket, but always says which
    # page's origin opened it. Only the site's own pages may; anything else is refused before the upgrade.
    origin = (websocket.headers.get("origin") or "").rstrip("/").lower()
    if origin not in site_origins(state.settings):
        log.warning("onboarding socket refused: foreign origin", extra={"origin": origin[:200]})
        denial = JSONResponse({"detail": "this origin may not open the onboarding chat"}, status_code=403)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(denial)
        else:
            await websocket.close(code=1008)
        return
    await websocket.accept()
    await Relay(websocket, state, client_ip(websocket, state.settings.trusted_proxies)).run()
