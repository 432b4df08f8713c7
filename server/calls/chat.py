"""Chat during a call: a rate per participant, a cap per call, and the customer's lines numbered in order."""

from __future__ import annotations

from . import views
from .errors import ProtocolError
from .participant import Participant, TokenBucket
from .state import LiveSession, Shared


class ChatLines:
    """Stores each line, then shows it to both sides (the customer's copy numbered, the rep's not)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def add(self, live: LiveSession, role: str, sender: Participant, text: str) -> None:
        if role == "customer":
            name = live.record.customer_name or "Customer"
        else:
            name = sender.user.display_name if sender.user else "Rep"
        bucket = live.chat_buckets.get(role)
        if bucket is None:
            rate = self.shared.settings.chat_per_minute / 60.0
            bucket = live.chat_buckets[role] = TokenBucket(rate, max(1, self.shared.settings.chat_burst))
        if self.shared.settings.chat_per_minute > 0 and not bucket.take():
            raise ProtocolError("rate_limited", f"at most {self.shared.settings.chat_per_minute} chat lines a minute")
        # One line at a time per call: the customer's line numbers follow the stored order.
        async with live.chat_lock:
            if live.chat_count is None:
                live.chat_count = len(await self.shared.store.list_chat(live.id))
            cap = self.shared.settings.max_chat_per_session
            if cap > 0 and live.chat_count >= cap:
                raise ProtocolError("chat_full", f"this call's chat holds at most {cap} lines")
            record = await self.shared.store.add_chat(live.id, role, name, text.strip())
            live.chat_count += 1
            seq = live.chat_count
        live.send_to_customer(views.customer_chat_message(record, seq))
        live.send_to_rep([views.rep_chat_message(record)])
