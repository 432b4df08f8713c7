"""What reaches a customer: only their own call, never the staff's card.

An invite link is all a customer holds, and anyone with devtools reads every frame. These tests drive
a whole call life through real sockets (an identified customer with CRM context and an earlier session
the rep wrote notes about), record every frame that reached any of the customer's sockets, and check
each message type's contents, an allow-list of keys, and that none of the staff's values show up.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import msgspec
import pytest

from server.http.auth import hash_password
from server.storage.api_keys import ApiKeyStore
from tests.support.clients import SignalingClient, welcomed
from tests.support.server import PASSWORD, Rapport

# The test's own list, on purpose not imported from server/calls/views.py: a key added there must be added here too.
CUSTOMER_KEYS = frozenset(
    {
        "type",
        "reply_to",
        "code",
        "message",
        "sdp",
        "protocol",
        "role",
        "ice_servers",
        "urls",
        "username",
        "credential",
        "session",
        "chat",
        "files",
        "call",
        "session_id",
        "state",
        "emotion_consent",
        "recording_consent",
        "answered_at",
        "rep",
        "display_name",
        "recording",
        "peer_media",
        # call.party (a supervisor joined openly: their display name) and call.monitored
        "present",
        "on",
        "audio",
        "video",
        "facing",
        "seq",
        "from",
        "name",
        "text",
        "at",
        "position",
        "estimated_wait_s",
        "who",
        "to",
        "ended_by",
        "reason",
        "callback",
        # file.shared (a photo, file or snapshot: a random file id and the customer's own URL, no staff ids)
        "file",
        "file_id",
        "kind",
        "media_type",
        "size",
        "width",
        "height",
        "url",
    }
)
# The only keys whose values may be numbers: anything else numeric (a rep id, a chat row id) is a leak.
NUMERIC_KEYS = frozenset({"protocol", "seq", "position", "estimated_wait_s", "size", "width", "height"})

# What staff know about the customer, and what the customer must never read.
CONTEXT = {"order": "ORD-SECRET-5521", "tier": "tier-secret-gold", "fault": "E17-secret-fault"}
IDENTITY = {
    "id": "crm-secret-ref-42",
    "name": "Fay Secretname",
    "email": "fay.secret@example.com",
    "phone": "+31 6 5555 0199",
}
PREVIOUS_NOTES = "Threatened to sue; offer goodwill only with approval (note-secret-7781)"
PREVIOUS_RATING_COMMENT = "rating-comment-secret-3310"
TRANSFER_NOTE = "transfer-note-secret: wants a refund"
WHISPER = "whisper-secret: offer the 20% goodwill voucher"
SUPERVISOR_LOGIN = "supervisor-login-3391"
REP_END_REASON = "rude-customer-secret"
REP_LOGINS = ("agent-login-sam", "agent-login-kim")


class TappedClient(SignalingClient):
    """A customer socket whose every text frame, as sent, lands in a shared tap."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, tap: list[str]) -> None:
        super().__init__(session, base_url)
        self.tap = tap

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.tap.append(msg.data)
                async with self._new:
                    self.inbox.append(json.loads(msg.data))
                    self._new.notify_all()
        self.closed_code = self.ws.close_code
        async with self._new:
            self._new.notify_all()


def keys_and_numbers(value: Any, parent: str = "") -> tuple[set[str], list[tuple[str, Any]]]:
    """Every key at any depth, and every number with the key it sits under."""
    keys: set[str] = set()
    numbers: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            keys.add(k)
            sub_keys, sub_numbers = keys_and_numbers(v, k)
            keys |= sub_keys
            numbers += sub_numbers
    elif isinstance(value, list):
        for item in value:
            sub_keys, sub_numbers = keys_and_numbers(item, parent)
            keys |= sub_keys
            numbers += sub_numbers
    elif isinstance(value, int | float) and not isinstance(value, bool):
        numbers.append((parent, value))
    return keys, numbers


async def add_rep(rapport: Rapport, username: str, display_name: str) -> SignalingClient:
    await rapport.store.create_user(username, display_name, "rep", hash_password(PASSWORD))
    return await rapport.rep(username)


async def invite(rapport: Rapport, headers: dict[str, str]) -> dict[str, Any]:
    body = {"customer": IDENTITY, "context": CONTEXT, "reason": "not_working", "language": "nl"}
    async with rapport.http.post(f"{rapport.url}/api/v1/invites", json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    # The page's config for the link holds the invite's language, and nothing else of the invite.
    async with rapport.http.get(f"{rapport.url}/api/v1/config?invite={created['code']}") as r:
        config = await r.text()
        assert r.status == 200 and json.loads(config)["language"] == "nl"
    assert [s for s in [*CONTEXT.values(), *IDENTITY.values()] if s in config] == []
    async with rapport.http.post(f"{rapport.url}/api/v1/invites/{created['code']}/redeem", json={}) as r:
        assert r.status == 201, await r.text()
        call: dict[str, Any] = await r.json()
    # The redeem answer is the customer's too: the session, its token and its expiry, nothing of the invite.
    assert set(call) == {"session_id", "token", "expires_at"}
    return call


async def customer_socket(rapport: Rapport, token: str, tap: list[str]) -> tuple[TappedClient, dict[str, Any]]:
    client = TappedClient(rapport.http, rapport.url, tap)
    await client.connect()
    await client.send({"type": "hello", "token": token})
    welcome = await client.wait_for("welcome")
    rapport._clients.append(client)
    return client, welcome


async def wrap_up_with_notes(rep: SignalingClient, base: str, session_id: str) -> None:
    async with rep.http.get(f"{base}/api/v1/me") as r:
        csrf = (await r.json())["csrf_token"]
    async with rep.http.post(
        f"{base}/api/v1/sessions/{session_id}/wrapup",
        json={"disposition": "escalated", "notes": PREVIOUS_NOTES},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        assert r.status == 200, await r.text()


def expect_accepted(message: dict[str, Any], session_id: str, rep_name: str) -> None:
    assert set(message) == {
        "type",
        "session_id",
        "answered_at",
        "rep",
        "peer_media",
        "emotion_consent",
        "recording",
    }
    assert message["session_id"] == session_id and message["rep"] == {"display_name": rep_name}
    assert message["answered_at"].endswith("Z") and message["emotion_consent"] is True
    assert message["peer_media"] is None  # the new rep has not said yet; a former rep's camera is not theirs
    assert message["recording"] == {
        "type": "recording.state",
        "session_id": session_id,
        "recording": False,
        "state": "off",
    }


async def test_a_whole_call_life_never_shows_the_customer_staff_data(rapport: Rapport) -> None:
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("invites:write",))
    headers = {"Authorization": f"Bearer {secret}"}
    sam = await add_rep(rapport, REP_LOGINS[0], "Sam Agent")
    earlier_tap: list[str] = []
    tap: list[str] = []

    # An earlier call of the same customer, with the rep's wrap-up notes and the customer's rating.
    before = await invite(rapport, headers)
    earlier, _ = await customer_socket(rapport, before["token"], earlier_tap)
    await sam.request({"type": "call.accept", "session_id": before["session_id"]})
    await earlier.wait_for("call.accepted")
    await sam.send({"type": "call.end"})
    await earlier.wait_for("call.ended")
    await wrap_up_with_notes(sam, rapport.url, before["session_id"])
    async with rapport.http.post(
        f"{rapport.url}/api/v1/calls/rating",
        json={"token": before["token"], "rating": 2, "comment": PREVIOUS_RATING_COMMENT},
    ) as r:
        assert r.status == 200 and await r.json() == {"ok": True}
    kim = await add_rep(rapport, REP_LOGINS[1], "Kim Agent")
    await kim.request({"type": "rep.status", "status": "away"})
    await sam.request({"type": "rep.status", "status": "away"})

    # Today's call: the welcome while waiting is the session's id, state and the customer's own choices.
    call = await invite(rapport, headers)
    sid = call["session_id"]
    first, welcome = await customer_socket(rapport, call["token"], tap)
    assert welcome == {
        "type": "welcome",
        "protocol": 1,
        "role": "customer",
        "ice_servers": [],
        "session": {"session_id": sid, "state": "waiting", "emotion_consent": True, "recording_consent": None},
        "chat": [],
        "files": [],
    }
    position = await first.wait_for("queue.position")
    assert set(position) == {"type", "position", "estimated_wait_s"} and position["position"] == 1
    line = await first.request({"type": "chat.send", "text": "It still shows E17"})
    assert line == {"type": "ack", "reply_to": line["reply_to"]}
    mine = await first.wait_for("chat.message")
    assert set(mine) == {"type", "seq", "from", "name", "text", "at"}
    assert (mine["seq"], mine["from"], mine["name"], mine["text"]) == (1, "customer", None, "It still shows E17")

    # A reload while waiting: the old socket hears bye, the new one the same welcome with the chat.
    second, again = await customer_socket(rapport, call["token"], tap)
    assert await first.wait_for("bye") == {"type": "bye", "reason": "replaced"}
    assert again["session"]["state"] == "waiting" and "call" not in again
    assert [(c["seq"], c["text"]) for c in again["chat"]] == [(1, "It still shows E17")]
    assert (await second.wait_for("queue.position"))["position"] == 1

    # Sam answers: the customer learns Sam's display name; Sam gets the card with context and history.
    n = len(sam.inbox)
    await sam.request({"type": "call.accept", "session_id": sid})
    card = (await sam.wait_for("call.accepted", after=n))["customer"]
    assert card["ref"] == IDENTITY["id"] and card["context"] == CONTEXT and card["identified"] is True
    assert card["contact"] == {"email": IDENTITY["email"], "phone": IDENTITY["phone"]}
    assert [(h["session_id"], h["outcome"], h["notes"], h["rating"]) for h in card["history"]] == [
        (before["session_id"], "escalated", PREVIOUS_NOTES, 2)
    ]
    expect_accepted(await second.wait_for("call.accepted"), sid, "Sam Agent")

    await sam.request({"type": "chat.send", "text": "Let me look at your order"})
    theirs = await second.wait_for(lambda m: m["type"] == "chat.message" and m["from"] == "rep")
    assert {k: theirs[k] for k in ("seq", "name", "text")} == {
        "seq": 2,
        "name": "Sam Agent",
        "text": "Let me look at your order",
    }
    assert set(await sam.wait_for(lambda m: m["type"] == "chat.message" and m["from"] == "rep")) >= {"id"}

    # Sam sends a PDF and asks for a snapshot: the customer's file.shared and snapshot.request carry a random
    # file id, the customer's own URL and the file's facts; no rep id, no uploader login, no staff URL.
    async with sam.http.get(f"{rapport.url}/api/v1/me") as r:
        sam_csrf = (await r.json())["csrf_token"]
    async with sam.http.post(
        f"{rapport.url}/api/v1/sessions/{sid}/files",
        params={"name": "guide.pdf"},
        data=b"%PDF-1.4\n%%EOF\n",
        headers={"X-CSRF-Token": sam_csrf},
    ) as r:
        assert r.status == 201, await r.text()
    shared = await second.wait_for("file.shared")
    assert set(shared["file"]) == {
        *("file_id", "from", "kind", "name", "media_type", "size", "width", "height", "url", "at"),
    }
    assert shared["file"]["url"].startswith("/api/v1/calls/files/f_") and shared["file"]["from"] == "rep"
    await sam.request({"type": "snapshot.take"})
    assert set(await second.wait_for("snapshot.request")) == {"type", "session_id"}

    await sam.request({"type": "media.state", "audio": False, "video": True})
    assert await second.wait_for("peer.media") == {"type": "peer.media", "who": "rep", "audio": False, "video": True}

    # Sam's console reloads: the customer hears that the rep is reconnecting, then back.
    await sam.close()
    assert await second.wait_for("peer.state") == {
        "type": "peer.state",
        "session_id": sid,
        "who": "rep",
        "state": "reconnecting",
    }
    sam = await rapport.rep(REP_LOGINS[0], available=False)
    back = await second.wait_for(lambda m: m["type"] == "peer.state" and m["state"] == "connected")
    assert back == {"type": "peer.state", "session_id": sid, "who": "rep", "state": "connected"}

    # Hostile and mistaken messages get the error shape and nothing else.
    for bad, code in (
        ({"type": "call.accept", "session_id": sid}, "forbidden"),
        ({"type": "call.transfer", "reason": "complaint"}, "forbidden"),
        ({"type": "chat.send"}, "bad_message"),
        ({"type": "chat.send", "text": "x", "session_id": before["session_id"]}, "session_not_found"),
        ({"type": "no.such"}, "unknown_type"),
    ):
        await second.send({**bad, "id": f"bad-{code}"})
        reply = await second.wait_for(lambda m, code=code: m.get("reply_to") == f"bad-{code}")
        assert set(reply) == {"type", "code", "message", "reply_to"} and reply["code"] == code, reply
    pong = await second.request({"type": "ping"})
    assert pong["type"] == "pong" and set(pong) == {"type", "reply_to"}

    # Sam hands the call back to the queue with a note for colleagues; the customer waits again.
    n = len(second.inbox)
    await kim.request({"type": "rep.status", "status": "available"})
    await sam.request({"type": "call.transfer", "reason": "complaint", "note": TRANSFER_NOTE})
    moved = await second.wait_for("call.transferred", after=n)
    assert moved == {"type": "call.transferred", "session_id": sid, "to": "queue"}
    k = len(kim.inbox)
    await kim.request({"type": "call.accept", "session_id": sid})
    expect_accepted(await second.wait_for("call.accepted", after=n), sid, "Kim Agent")
    assert (await kim.wait_for("call.accepted", after=k))["customer"]["history"][0]["notes"] == PREVIOUS_NOTES

    # A supervisor listens and whispers (the customer hears of neither: disclose_listening is off), joins
    # openly (the customer learns their display name and nothing else), and leaves.
    await rapport.store.create_user(SUPERVISOR_LOGIN, "Lee Lead", "supervisor", hash_password(PASSWORD))
    http, _csrf = await rapport.staff_session(SUPERVISOR_LOGIN)
    lead = await welcomed(http, rapport.url)
    rapport._clients.append(lead)
    n = len(second.inbox)
    await lead.request({"type": "assist.start", "session_id": sid, "mode": "listen"})
    await lead.request({"type": "assist.mode", "mode": "whisper"})
    await lead.request({"type": "whisper.send", "text": WHISPER})
    assert (await kim.wait_for("whisper.message"))["text"] == WHISPER
    await lead.request({"type": "assist.mode", "mode": "barge"})
    joined = await second.wait_for("call.party", after=n)
    assert joined == {
        "type": "call.party",
        "session_id": sid,
        "present": True,
        "name": "Lee Lead",
        "role": "supervisor",
    }
    await lead.request({"type": "assist.leave"})
    left = await second.wait_for(lambda m: m["type"] == "call.party" and not m["present"], after=n)
    assert left == {"type": "call.party", "session_id": sid, "present": False, "name": "Lee Lead", "role": "supervisor"}
    assert [m["type"] for m in second.inbox[n:]] == ["call.party", "call.party"]

    # A reload mid-call: the welcome carries the call as the customer sees it, the numbered chat and the files
    # shared so far (the customer's own copies: the same facts and URL as their file.shared).
    third, during = await customer_socket(rapport, call["token"], tap)
    assert set(during) == {"type", "protocol", "role", "ice_servers", "session", "chat", "files", "call"}
    assert during["files"] == [shared["file"]]
    assert during["session"] == {
        "session_id": sid,
        "state": "active",
        "emotion_consent": True,
        "recording_consent": None,
    }
    expect_accepted(during["call"], sid, "Kim Agent")
    assert [(c["seq"], c["from"], c["name"]) for c in during["chat"]] == [
        (1, "customer", None),
        (2, "rep", "Sam Agent"),
    ]

    # Kim ends it with words for colleagues: the customer hears only that the rep hung up.
    await kim.send({"type": "call.end", "reason": REP_END_REASON})
    ended = await third.wait_for("call.ended")
    assert ended == {
        "type": "call.ended",
        "session_id": sid,
        "state": "ended",
        "ended_by": "rep",
        "reason": "rep_hangup",
    }
    assert (await kim.wait_for("call.ended"))["reason"] == REP_END_REASON

    # Every frame any customer socket received, whole.
    assert len(tap) > 20
    stray: set[str] = set()
    numbers: list[tuple[str, Any]] = []
    for frame in earlier_tap + tap:
        frame_keys, frame_numbers = keys_and_numbers(json.loads(frame))
        stray |= frame_keys - CUSTOMER_KEYS
        numbers += [(k, v) for k, v in frame_numbers if k not in NUMERIC_KEYS]
    assert stray == set(), f"keys no customer may see: {sorted(stray)}"
    assert numbers == [], f"numbers that are not the customer's: {numbers}"
    secrets = [
        *CONTEXT.values(),
        *IDENTITY.values(),
        PREVIOUS_NOTES,
        "note-secret-7781",
        PREVIOUS_RATING_COMMENT,
        TRANSFER_NOTE,
        WHISPER,
        SUPERVISOR_LOGIN,
        REP_END_REASON,
        *REP_LOGINS,
        before["session_id"],  # the earlier session is in the rep's history, not the customer's call
        "escalated",
        "Secretname",
    ]
    raw = "\n".join(tap)
    assert [s for s in secrets if s in raw] == []


async def test_a_customer_socket_refuses_a_message_built_for_staff(
    rapport: Rapport, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: if a change ever handed the customer the rep's message, the socket would not send it."""
    from server.calls import views

    monkeypatch.setattr(views, "customer_accepted", views.rep_accepted)
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(name="Ada", contact={"email": "ada@example.com"})
    caplog.set_level(logging.ERROR, logger="server.signalling.connection")
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await rep.wait_for("call.accepted")
    await customer.request({"type": "ping"})
    assert [m for m in customer.inbox if m["type"] == "call.accepted"] == []
    assert "ada@example.com" not in json.dumps(customer.inbox)
    refused = [r.getMessage() for r in caplog.records if "not sent to a customer" in r.getMessage()]
    assert refused and "'customer'" in refused[0] and "ada@example.com" not in refused[0]


def fields_of(types: list[type[msgspec.Struct]]) -> tuple[set[str], set[str], list[str]]:
    """Every key the types can put in a message (at any depth), the keys of number fields, and free-form fields."""
    keys: set[str] = set()
    numeric: set[str] = set()
    free: list[str] = []
    seen: set[type] = set()
    stack: list[tuple[str, msgspec.inspect.Type]] = [("", info) for info in msgspec.inspect.multi_type_info(types)]
    while stack:
        key, info = stack.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                continue
            seen.add(info.cls)
            keys |= {info.tag_field} if info.tag_field else set()
            keys |= {f.encode_name for f in info.fields}
            stack += [(f.encode_name, f.type) for f in info.fields]
        elif isinstance(info, msgspec.inspect.Metadata):
            stack.append((key, info.type))
        elif isinstance(info, msgspec.inspect.UnionType):
            stack += [(key, t) for t in info.types]
        elif isinstance(info, msgspec.inspect.ListType):
            stack.append((key, info.item_type))
        elif isinstance(info, msgspec.inspect.DictType | msgspec.inspect.AnyType):
            free.append(key)  # keys nobody listed: a customer's type must not have one
        elif isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            numeric.add(key)
    return keys, numeric, free


def test_every_customer_message_type_has_only_allowed_fields() -> None:
    """The types themselves: whatever a builder fills in, a customer's message has no field outside the list."""
    from server.calls.payloads import CUSTOMER_KEYS as DERIVED
    from server.calls.payloads import SERVER_MESSAGES

    for_customers = [t for t in SERVER_MESSAGES if t.audience in ("customer", "both")]
    tags = {t.__struct_config__.tag for t in for_customers}
    assert {"welcome", "call.accepted", "chat.message", "call.ended", "error", "queue.position"} <= tags
    keys, numeric, free = fields_of(for_customers)
    assert keys - CUSTOMER_KEYS == set(), (
        f"customer message fields outside the allow-list: {sorted(keys - CUSTOMER_KEYS)}"
    )
    assert numeric <= NUMERIC_KEYS, f"number fields a customer may read: {sorted(numeric - NUMERIC_KEYS)}"
    assert free == [], f"free-form fields in a customer's message: {free}"
    # The server's own list (what the socket checks) is the same one.
    assert DERIVED == keys

    # The check sees staff data where it is: the rep's types hold the card, ids and free-form context.
    for_reps = [t for t in SERVER_MESSAGES if t.audience == "rep"]
    rep_keys, rep_numeric, rep_free = fields_of(for_reps)
    assert {"customer", "context", "notes", "history", "note"} <= rep_keys - CUSTOMER_KEYS
    assert "id" in rep_numeric and "context" in rep_free
