"""Staff accounts, their logins (cookie sessions) and what calls are routed to them."""

from __future__ import annotations

import json

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tokens
from . import schema
from .base import Repository, from_row
from .records import StaffAccount, User

ROLES = ("rep", "qa", "supervisor", "admin")


class UsernameTaken(ValueError):
    """Another account has this username."""


class LastAdmin(ValueError):
    """The change would leave no active admin."""


def _user(row: RowMapping) -> User:
    return from_row(User, row)


class UserRepository(Repository):
    # accounts

    async def create_user(self, username: str, display_name: str, role: str, password_hash: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        user_id = await self._insert(
            schema.users,
            username=username,
            display_name=display_name,
            role=role,
            password_hash=password_hash,
            active=True,
            created_at=schema.now(),
        )
        return User(user_id, username, display_name, role, True)

    async def add_user(
        self, username: str, display_name: str, role: str, password_hash: str, skills: list[str], languages: list[str]
    ) -> User:
        """A new account with its routing, in one transaction; :class:`UsernameTaken` when the name is in use."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        users = schema.users
        try:
            async with self.engine.begin() as conn:
                taken = await conn.execute(select(users.c.id).where(func.lower(users.c.username) == username.lower()))
                if taken.first() is not None:
                    raise UsernameTaken(username)
                result = await conn.execute(
                    insert(users).values(
                        username=username,
                        display_name=display_name,
                        role=role,
                        password_hash=password_hash,
                        active=True,
                        created_at=schema.now(),
                        skills=json.dumps(sorted(skills)),
                        languages=json.dumps(sorted(languages)),
                    )
                )
        except IntegrityError:
            raise UsernameTaken(username) from None  # made by someone else meanwhile
        key = result.inserted_primary_key
        return User(int(key[0]) if key else 0, username, display_name, role, True)

    async def set_role(self, user_id: int, role: str) -> int:
        """A new role; their logins end (an open page must not keep the old role's powers). :class:`LastAdmin`
        when it would demote the last active admin. Returns how many logins ended."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        async with self.engine.begin() as conn:
            if role != "admin" and not await self._another_admin(conn, user_id):
                raise LastAdmin("the last active admin stays an admin")
            await conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(role=role))
            return await self._revoke_logins(conn, user_id)

    async def set_active_guarded(self, user_id: int, active: bool) -> int:
        """As :meth:`set_active`, but :class:`LastAdmin` when it would disable the last active admin."""
        async with self.engine.begin() as conn:
            if not active and not await self._another_admin(conn, user_id):
                raise LastAdmin("the last active admin cannot be disabled")
            await conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(active=active))
            return 0 if active else await self._revoke_logins(conn, user_id)

    @staticmethod
    async def _another_admin(conn: AsyncConnection, user_id: int) -> bool:
        """Whether an active admin other than ``user_id`` exists (or ``user_id`` is no active admin itself)."""
        users = schema.users
        row = (await conn.execute(select(users.c.role, users.c.active).where(users.c.id == user_id))).first()
        if row is None or row.role != "admin" or not row.active:
            return True
        others = await conn.execute(
            select(func.count())
            .select_from(users)
            .where(users.c.role == "admin", users.c.active.is_(True), users.c.id != user_id)
        )
        return int(others.scalar_one()) > 0

    async def get_account(self, user_id: int) -> StaffAccount | None:
        return next((u for u in await self.list_users() if u.id == user_id), None)

    async def set_password(self, user_id: int, password_hash: str) -> int:
        """A new password ends every login made with the old one; returns how many were live."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.users).where(schema.users.c.id == user_id).values(password_hash=password_hash)
            )
            return await self._revoke_logins(conn, user_id)

    async def set_active(self, user_id: int, active: bool) -> int:
        """Enable or disable a user; disabling ends their logins. Returns how many logins ended."""
        async with self.engine.begin() as conn:
            await conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(active=active))
            return 0 if active else await self._revoke_logins(conn, user_id)

    @staticmethod
    async def _revoke_logins(conn: AsyncConnection, user_id: int) -> int:
        logins = schema.staff_logins
        result = await conn.execute(
            update(logins)
            .where(logins.c.user_id == user_id, logins.c.revoked_at.is_(None))
            .values(revoked_at=schema.now())
        )
        return int(result.rowcount or 0)

    async def user_with_hash(self, username: str) -> tuple[User, str] | None:
        row = await self._first(select(schema.users).where(schema.users.c.username == username))
        return (_user(row), row["password_hash"]) if row else None

    async def get_user(self, user_id: int) -> User | None:
        return await self._record(User, select(schema.users).where(schema.users.c.id == user_id))

    async def count_users(self) -> int:
        return int(await self._scalar(select(func.count()).select_from(schema.users)))

    async def list_users(self) -> list[StaffAccount]:
        rows = await self._all(select(schema.users).order_by(schema.users.c.username))
        return [
            from_row(
                StaffAccount,
                r,
                skills=tuple(json.loads(r["skills"] or "[]")),
                languages=tuple(json.loads(r["languages"] or "[]")),
            )
            for r in rows
        ]

    # routing

    async def get_routing(self, user_id: int) -> tuple[frozenset[str], frozenset[str]]:
        """The reasons and languages the user takes calls for; empty means "any"."""
        users = schema.users
        row = await self._first(select(users.c.skills, users.c.languages).where(users.c.id == user_id))
        if row is None:
            return frozenset(), frozenset()
        return frozenset(json.loads(row["skills"] or "[]")), frozenset(json.loads(row["languages"] or "[]"))

    async def set_routing(self, user_id: int, skills: list[str], languages: list[str]) -> None:
        await self._write(
            update(schema.users)
            .where(schema.users.c.id == user_id)
            .values(skills=json.dumps(sorted(skills)), languages=json.dumps(sorted(languages)))
        )

    # the staff pages' language

    async def get_language(self, user_id: int) -> str | None:
        """The language the user chose for the staff pages, or None (the pages follow the browser)."""
        return await self._scalar(select(schema.users.c.language).where(schema.users.c.id == user_id))

    async def set_language(self, user_id: int, language: str | None) -> None:
        await self._write(update(schema.users).where(schema.users.c.id == user_id).values(language=language))

    # staff logins

    async def create_login(self, user_id: int, ttl_s: float) -> tuple[str, str]:
        """A new login: (cookie, csrf_token). Only the cookie's SHA-256 is stored."""
        cookie, csrf = tokens.new_secret(), tokens.new_secret(24)
        t = schema.now()
        await self._write(
            insert(schema.staff_logins).values(
                token_hash=tokens.digest(cookie), user_id=user_id, csrf_token=csrf, created_at=t, expires_at=t + ttl_s
            )
        )
        return cookie, csrf

    async def get_login(self, cookie: str) -> tuple[User, str, str] | None:
        """(user, csrf_token, login_id) for a live login cookie."""
        key = tokens.digest(cookie)
        logins = schema.staff_logins
        row = await self._first(
            select(logins, schema.users)
            .join(schema.users, schema.users.c.id == logins.c.user_id)
            .where(logins.c.token_hash == key)
        )
        if row is None or row["revoked_at"] is not None or row["expires_at"] < schema.now() or not row["active"]:
            return None
        return _user(row), row["csrf_token"], key

    async def login_state(self, login_id: str) -> str:
        """``live``, or why a login no longer counts: ``logged_out``, ``expired``, ``disabled``."""
        logins = schema.staff_logins
        row = await self._first(
            select(logins.c.revoked_at, logins.c.expires_at, schema.users.c.active)
            .join(schema.users, schema.users.c.id == logins.c.user_id)
            .where(logins.c.token_hash == login_id)
        )
        if row is None or row["revoked_at"] is not None:
            return "disabled" if row is not None and not row["active"] else "logged_out"
        if not row["active"]:
            return "disabled"
        if row["expires_at"] < schema.now():
            return "expired"
        return "live"

    async def revoke_login(self, login_id: str) -> None:
        logins = schema.staff_logins
        await self._write(update(logins).where(logins.c.token_hash == login_id).values(revoked_at=schema.now()))
