"""`GET /agent/events`: the dashboard's live stream of the signed-in user's agent (Server-Sent Events)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from clawhost_control_api.api.deps import CurrentSession, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.dashboard.live import agent_events

router = APIRouter(tags=["agent"])

EVENT_STREAM = "text/event-stream"


@router.get(
    "/agent/events",
    response_class=StreamingResponse,
    responses={
        **responses(401),
        200: {
            "description": "Server-Sent Events: `agent` (the agent's view and its state in words), `usage` (figures, "
            "gauge, chart SVG), `health` (cluster and usage store reachable), `expired` (sign in again); "
            "comment lines keep the connection open",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
    },
)
async def stream_agent_events(session: CurrentSession, state: State) -> StreamingResponse:
    events = agent_events(state, session.user, session.claims.session_id, session.claims.expires_at)
    return StreamingResponse(
        events,
        media_type=EVENT_STREAM,
        # No proxy may buffer or cache it: each event matters the moment it is sent.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
