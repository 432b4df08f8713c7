"""A call's chat lines, as both sides sent them."""

from __future__ import annotations

from sqlalchemy import select

from . import schema
from .base import Repository
from .records import ChatRecord


class ChatRepository(Repository):
    async def add_chat(self, session_id: str, sender: str, sender_name: str | None, text: str) -> ChatRecord:
        t = schema.now()
        chat_id = await self._insert(
            schema.chat_messages, session_id=session_id, sender=sender, sender_name=sender_name, text=text, created_at=t
        )
        return ChatRecord(chat_id, session_id, sender, sender_name, text, t)

    async def list_chat(self, session_id: str) -> list[ChatRecord]:
        chat = schema.chat_messages
        return await self._records(ChatRecord, select(chat).where(chat.c.session_id == session_id).order_by(chat.c.id))
