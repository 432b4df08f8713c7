"""The media nodes' registry in Redis: who is up, where, and how busy (see docs/scaling.md).

* ``rapport:media-nodes``: a hash, node name -> JSON ``{address, port, capacity, load, pid, seen}``;
* ``rapport:media-node:<name>``: the node's heartbeat key, with a TTL of ``node_timeout_s``: a node whose
  key expired is gone, whatever its hash entry says;
* ``rapport:session-node``: a hash, session id -> the name of the node carrying that call's media.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

NODES_KEY = "rapport:media-nodes"
SESSION_NODE_KEY = "rapport:session-node"


def heartbeat_key(name: str) -> str:
    return f"rapport:media-node:{name}"


@dataclass(frozen=True)
class NodeInfo:
    """One node's registry entry."""

    name: str
    address: str
    port: int
    capacity: int
    load: int
    pid: int
    seen: float  # epoch seconds of the heartbeat that wrote it

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["name"]  # the hash field is the name
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, text: str | bytes) -> NodeInfo:
        """ValueError (or KeyError/TypeError) on an entry that is not one of ours."""
        fields: Any = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("a registry entry must be a JSON object")
        return cls(
            name=name,
            address=str(fields["address"]),
            port=int(fields["port"]),
            capacity=int(fields["capacity"]),
            load=int(fields["load"]),
            pid=int(fields["pid"]),
            seen=float(fields["seen"]),
        )
