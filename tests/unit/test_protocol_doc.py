"""docs/protocol.md's message reference is the one rendered from the protocol's Structs."""

from __future__ import annotations

from server.calls.payloads import SERVER_MESSAGES
from server.signalling import protocol_doc
from server.signalling.messages import CLIENT_MESSAGES, wire_type


def test_the_committed_reference_is_fresh() -> None:
    committed = protocol_doc.PROTOCOL_MD.read_text()
    assert protocol_doc.update(committed) == committed, "docs/protocol.md is stale: run `make docs`"


def test_the_reference_names_every_message_field_and_limit() -> None:
    block = protocol_doc.render()
    for cls in (*CLIENT_MESSAGES, *SERVER_MESSAGES):
        assert f"#### `{wire_type(cls)}`" in block, cls
    assert "| `text` | string (not blank, at most 2000 characters) | yes |" in block
    assert '| `status` | `"available"` or `"away"` | yes |' in block
    # A field left out when unset says so; a customer's call.ended has its callback only after the longest wait.
    assert "| `callback` | boolean | no |" in block


def test_a_changed_model_makes_the_committed_reference_stale() -> None:
    committed = protocol_doc.PROTOCOL_MD.read_text()
    start, end = committed.index(protocol_doc.START), committed.index(protocol_doc.END)
    edited = committed[:start] + committed[start:end].replace("at most 2000 characters", "at most 20 characters", 1)
    edited += committed[end:]
    assert edited != committed
    assert protocol_doc.update(edited) == committed
    # The prose around the block is kept as it is.
    prose = committed.replace("## Negotiation", "## Negotiation (edited)")
    assert protocol_doc.update(prose) == prose
