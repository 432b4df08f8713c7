"""The Store is its repositories put together: none hides another's method, and all share one engine."""

from __future__ import annotations

import inspect
import json

from sqlalchemy import select

from server.storage import schema
from server.storage.base import Repository
from server.storage.migrations import migrate
from server.storage.records import NewCall
from server.storage.store import Store
from server.storage.webhooks import WebhookStore


def repository_methods(cls: type) -> dict[str, list[str]]:
    """Method name -> the repositories of ``cls`` that define it."""
    owners: dict[str, list[str]] = {}
    for base in cls.__mro__[1:]:
        if issubclass(base, Repository) and base is not Repository:
            for name, value in vars(base).items():
                if inspect.isfunction(value) or isinstance(value, staticmethod):
                    owners.setdefault(name, []).append(base.__name__)
    return owners


def test_no_repository_hides_a_method_of_another() -> None:
    owners = repository_methods(Store)
    assert len(owners) > 40  # the walk does see the repositories
    assert {name: found for name, found in owners.items() if len(found) > 1} == {}


def test_a_planted_clash_is_found() -> None:
    class First(Repository):
        async def get_thing(self) -> None: ...

    class Second(Repository):
        async def get_thing(self) -> None: ...

    class Both(First, Second):
        pass

    assert repository_methods(Both)["get_thing"] == ["First", "Second"]


async def test_records_come_back_typed_and_a_recording_answer_never_shows_its_path(database_url: str) -> None:
    engine = schema.create_engine(database_url)
    try:
        await migrate(engine)
        store = Store(engine)
        record, _token = await store.create_session(NewCall(customer_name="Ada"), token_ttl_s=60)
        recording_id = await store.add_recording(record.id, "customer", "video", f"{record.id}/customer-video.mkv")
        [recording] = await store.list_recordings(record.id)
        assert (recording.id, recording.path, recording.state) == (
            recording_id,
            f"{record.id}/customer-video.mkv",
            "recording",
        )
        assert await store.get_recording(recording_id) == recording
        assert "path" not in recording.to_json()
        [event] = await store.list_events(record.id)
        assert (event.kind, event.detail) == ("created", None)
        await store.audit(None, "test.action", record.id, {"n": 1})
        [entry] = await store.list_audit()
        assert (entry.action, entry.target, entry.detail) == ("test.action", record.id, {"n": 1})
        assert entry.to_json()["at"].endswith("Z")
    finally:
        await engine.dispose()


async def test_erasure_blanks_exactly_the_webhook_payloads_naming_the_session(database_url: str) -> None:
    # Ids hold "_" and mixed case: a LIKE match would also take the look-alikes (SQLite ignores case).
    erased, lookalikes = "s_Ab", ("sXAb", "S_AB", "s_Abc")
    engine = schema.create_engine(database_url)
    try:
        await migrate(engine)
        webhooks = WebhookStore(engine)
        endpoint = await webhooks.create_endpoint("https://example.invalid/hook", "secret", ("call.ended",), None)
        for n, session_id in enumerate((erased, *lookalikes)):
            await webhooks.queue_event("call.ended", f"e{n}", json.dumps({"session_id": session_id}), at=1.0)
        counts = await Store(engine).erase_session_rows(erased)
        deliveries = schema.webhook_deliveries
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries.c.payload).where(deliveries.c.endpoint_id == endpoint.id).order_by(deliveries.c.id)
            )
            payloads = [json.loads(payload) for (payload,) in rows]
        assert counts["webhook_payloads"] == 1
        assert payloads == [
            {"erased": True, "session_id": erased},
            *({"session_id": session_id} for session_id in lookalikes),
        ]
    finally:
        await engine.dispose()
