"""The onboarding chat sessions that reached an agent: which user, which Customer, which checkout (PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class Journey:
    session_id: str
    user_id: uuid.UUID
    customer_name: str
    bot_username: str
    checkout_id: str | None
    checkout_url: str | None
    checkout_expires_at: datetime | None


_COLUMNS = "session_id, user_id, customer_name, bot_username, checkout_id, checkout_url, checkout_expires_at"


@asynccontextmanager
async def session_lock(pool: AsyncConnectionPool, session_id: str) -> AsyncIterator[None]:
    """One result of a chat session handled at a time, across connections and replicas (an advisory lock)."""
    async with pool.connection() as conn:
        key = f"onboarding:{session_id}"
        await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


async def find(pool: AsyncConnectionPool, session_id: str) -> Journey | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(f"SELECT {_COLUMNS} FROM onboarding_journeys WHERE session_id = %s", (session_id,))  # noqa: S608
        ).fetchone()
    return Journey(*row) if row else None


async def start(
    pool: AsyncConnectionPool, session_id: str, user_id: uuid.UUID, customer_name: str, bot_username: str
) -> Journey:
    """Record the session's Customer name before the Customer is created, so a repeated result resumes it."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO onboarding_journeys (session_id, user_id, customer_name, bot_username)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (session_id) DO NOTHING",
            (session_id, user_id, customer_name, bot_username),
        )
    found = await find(pool, session_id)
    assert found is not None
    return found


async def record_checkout(
    pool: AsyncConnectionPool, session_id: str, checkout_id: str, url: str, expires_at: datetime | None
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE onboarding_journeys SET checkout_id = %s, checkout_url = %s, checkout_expires_at = %s"
            " WHERE session_id = %s",
            (checkout_id, url, expires_at, session_id),
        )


async def latest_for_customer(pool: AsyncConnectionPool, user_id: uuid.UUID, customer_name: str) -> Journey | None:
    """The user's journey that made this Customer (to follow it from a resumed session)."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                f"SELECT {_COLUMNS} FROM onboarding_journeys WHERE user_id = %s AND customer_name = %s"  # noqa: S608
                " ORDER BY created_at DESC LIMIT 1",
                (user_id, customer_name),
            )
        ).fetchone()
    return Journey(*row) if row else None
