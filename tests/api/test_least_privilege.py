"""Least privilege in the REST API: a rep reads only the sessions they took; qa, supervisor, admin and
API keys with sessions:read read them all."""

from __future__ import annotations

import aiohttp

from server.storage.api_keys import API_KEYS
from tests.support.server import Rapport


async def _taken_by(rapport: Rapport, rep_name: str, customer_name: str) -> str:
    rep = await rapport.rep(rep_name, available=False)
    _customer, call = await rapport.customer(name=customer_name)
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    return str(call["session_id"])


async def _read(http: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[int, dict[str, object]]:
    async with http.get(url, **kwargs) as r:  # type: ignore[arg-type]
        return r.status, await r.json()


async def test_a_rep_reads_only_their_own_sessions(rapport: Rapport) -> None:
    ada = await _taken_by(rapport, "rep1", "Ada")
    bo = await _taken_by(rapport, "rep2", "Bo")
    _waiting_customer, waiting = await rapport.customer(name="Cy")
    rep1, _csrf = await rapport.staff_session("rep1")

    status, body = await _read(rep1, f"{rapport.url}/api/v1/sessions/{ada}")
    assert status == 200 and body["customer_name"] == "Ada"
    # Another rep's call and a call nobody has taken: the same answer as an id that does not exist.
    for other in (bo, waiting["session_id"], "s_unknown"):
        status, body = await _read(rep1, f"{rapport.url}/api/v1/sessions/{other}")
        assert (status, body) == (404, {"error": {"code": "not_found", "message": "no such session"}}), other

    status, body = await _read(rep1, f"{rapport.url}/api/v1/sessions")
    assert status == 200 and [s["session_id"] for s in body["items"]] == [ada]  # type: ignore[attr-defined]
    for query, expected in (("state=active&limit=500", [ada]), ("state=waiting", []), ("from=2000-01-01", [ada])):
        status, body = await _read(rep1, f"{rapport.url}/api/v1/sessions?{query}")
        assert status == 200 and [s["session_id"] for s in body["items"]] == expected, query  # type: ignore[attr-defined]


async def test_qa_supervisor_admin_and_api_keys_read_every_session(rapport: Rapport) -> None:
    ada = await _taken_by(rapport, "rep1", "Ada")
    bo = await _taken_by(rapport, "rep2", "Bo")
    _waiting_customer, waiting = await rapport.customer(name="Cy")
    everyone = {ada, bo, waiting["session_id"]}
    await rapport.add_user("sup1", "supervisor")
    await rapport.add_user("adm1", "admin")
    _key, secret = await rapport.app[API_KEYS].create("crm", ("sessions:read",))
    readers: list[tuple[str, aiohttp.ClientSession, dict[str, str]]] = []
    for name in ("qa1", "sup1", "adm1"):
        http, _csrf = await rapport.staff_session(name)
        readers.append((name, http, {}))
    readers.append(("api key", rapport.http, {"Authorization": f"Bearer {secret}"}))
    for who, http, headers in readers:
        status, body = await _read(http, f"{rapport.url}/api/v1/sessions", headers=headers)
        assert status == 200 and {s["session_id"] for s in body["items"]} == everyone, who  # type: ignore[attr-defined]
        for session_id in everyone:
            status, _body = await _read(http, f"{rapport.url}/api/v1/sessions/{session_id}", headers=headers)
            assert status == 200, (who, session_id)
