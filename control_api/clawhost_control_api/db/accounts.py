"""Users, sessions and single-use refresh tokens in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from clawhost_control_api.core.errors import ControlApiError


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    customer_name: str | None


class EmailTakenError(ControlApiError):
    pass


class RefreshRejectedError(ControlApiError):
    """Unknown, expired, revoked or already-used refresh token (reuse revokes its whole family)."""


_USER_COLUMNS = "id, email, password_hash, customer_name"


async def create_user(pool: AsyncConnectionPool, email: str, password_hash: str) -> User:
    user = User(uuid.uuid4(), email, password_hash, None)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, %s)", (user.id, email, password_hash)
            )
    except psycopg.errors.UniqueViolation:
        raise EmailTakenError(email) from None
    return user


async def find_user_by_email(pool: AsyncConnectionPool, email: str) -> User | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE email = %s", (email,))).fetchone()  # noqa: S608
    return User(*row) if row else None


async def find_user(pool: AsyncConnectionPool, user_id: uuid.UUID) -> User | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,))).fetchone()  # noqa: S608
    return User(*row) if row else None


async def link_customer(pool: AsyncConnectionPool, user_id: uuid.UUID, customer_name: str) -> bool:
    """Link the user to their Customer; False when the user already has one."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE users SET customer_name = %s WHERE id = %s AND customer_name IS NULL", (customer_name, user_id)
        )
        return cursor.rowcount == 1


async def unlink_customer(pool: AsyncConnectionPool, user_id: uuid.UUID, customer_name: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE users SET customer_name = NULL WHERE id = %s AND customer_name = %s", (user_id, customer_name)
        )


async def open_session(pool: AsyncConnectionPool, user_id: uuid.UUID, jti: str, expires_at: datetime) -> uuid.UUID:
    session_id = uuid.uuid4()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO sessions (id, user_id) VALUES (%s, %s)", (session_id, user_id))
        await conn.execute(
            "INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES (%s, %s, %s)",
            (jti, session_id, expires_at),
        )
    return session_id


async def session_user(pool: AsyncConnectionPool, session_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    """The user of a live (not revoked) session, in one round trip: every authenticated request asks this."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT u.id, u.email, u.password_hash, u.customer_name"
                " FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE s.id = %s AND s.user_id = %s AND s.revoked_at IS NULL",
                (session_id, user_id),
            )
        ).fetchone()
    return User(*row) if row else None


async def refresh_token_user(
    pool: AsyncConnectionPool, session_id: uuid.UUID, user_id: uuid.UUID, jti: str
) -> User | None:
    """The user whose refresh token `jti` is still usable (unused, unexpired, its session live), consuming nothing:
    the site's pages and its access-token route read the browser's session cookie with it."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT u.id, u.email, u.password_hash, u.customer_name"
                " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id"
                " WHERE r.jti = %s AND r.session_id = %s AND s.user_id = %s"
                " AND r.used_at IS NULL AND r.expires_at > now() AND s.revoked_at IS NULL",
                (jti, session_id, user_id),
            )
        ).fetchone()
    return User(*row) if row else None


async def rotate_refresh(
    pool: AsyncConnectionPool, session_id: uuid.UUID, old_jti: str, new_jti: str, new_expires_at: datetime
) -> None:
    """Consume `old_jti` and record `new_jti` in the same family; a second use revokes the family."""
    async with pool.connection() as conn:
        async with conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT r.used_at, r.expires_at < now(), s.revoked_at FROM refresh_tokens r"
                    " JOIN sessions s ON s.id = r.session_id WHERE r.jti = %s AND r.session_id = %s FOR UPDATE",
                    (old_jti, session_id),
                )
            ).fetchone()
            if row is not None and row[0] is None and not row[1] and row[2] is None:
                await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE jti = %s", (old_jti,))
                await conn.execute(
                    "INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES (%s, %s, %s)",
                    (new_jti, session_id, new_expires_at),
                )
                return
        if row is not None and row[0] is not None:
            await revoke_session(pool, session_id)
    raise RefreshRejectedError


async def revoke_session(pool: AsyncConnectionPool, session_id: uuid.UUID) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (session_id,))
