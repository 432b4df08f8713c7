"""The message reference in docs/protocol.md, rendered from the protocol's Structs.

``python -m server.signalling.protocol_doc`` (``make docs``) rewrites the part of docs/protocol.md between
``<!-- generated: messages -->`` and ``<!-- end generated -->``; the prose around it is hand-written.
Types and constraints come from the fields, descriptions from Struct docstrings and ``Meta(description=...)``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path

import msgspec
from msgspec import inspect as mi

from ..calls.payloads import SERVER_MESSAGES
from .messages import CLIENT_MESSAGES, NOT_BLANK, ClientMessage, wire_type

START = "<!-- generated: messages -->"
END = "<!-- end generated -->"
PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

SENDERS = {"none": "a new socket (before `hello`)", "customer": "customer", "rep": "rep"}
AUDIENCES = {"customer": "customer", "rep": "rep", "supervisor": "supervisor", "both": "every role"}


def _cell(text: str) -> str:
    """One line of a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__) if cls.__doc__ else ""


def _summary(cls: type) -> str:
    return _doc(cls).split("\n\n")[0]


def _unwrap(kind: mi.Type) -> tuple[mi.Type, str]:
    """The type without its Metadata, and the first description found on the way."""
    description = ""
    while isinstance(kind, mi.Metadata):
        description = description or str((kind.extra_json_schema or {}).get("description", ""))
        kind = kind.type
    if isinstance(kind, mi.UnionType) and not description:
        for member in kind.types:
            if isinstance(member, mi.Metadata):
                description = str((member.extra_json_schema or {}).get("description", ""))
                break
    return kind, description


class Renderer:
    """Renders Structs as Markdown; collects the nested Structs ("parts") it links to.

    ``messages`` maps a message Struct to its heading, so a message inside another links to its section.
    """

    def __init__(self, messages: dict[type, str]) -> None:
        self.messages = messages
        self.parts: dict[type, mi.StructType] = {}

    def type_name(self, kind: mi.Type) -> str:
        kind, _ = _unwrap(kind)
        if isinstance(kind, mi.UnionType):
            return " or ".join(self.type_name(member) for member in kind.types)
        if isinstance(kind, mi.StrType):
            return "string" + self._limits(kind)
        if isinstance(kind, mi.BoolType):
            return "boolean"
        if isinstance(kind, mi.IntType):
            return "integer"
        if isinstance(kind, mi.FloatType):
            return "number"
        if isinstance(kind, mi.NoneType):
            return "null"
        if isinstance(kind, mi.LiteralType):
            return " or ".join(f"`{msgspec.json.encode(v).decode()}`" for v in kind.values)
        if isinstance(kind, mi.ListType):
            return f"list of {self.type_name(kind.item_type)}"
        if isinstance(kind, mi.DictType):
            values = _unwrap(kind.value_type)[0]
            return "object" if isinstance(values, mi.AnyType) else f"object of {self.type_name(values)}"
        if isinstance(kind, mi.StructType):
            if kind.cls in self.messages:
                heading = self.messages[kind.cls]
                return f"[{heading}](#{_anchor(heading)})"
            self.parts.setdefault(kind.cls, kind)
            return f"[{kind.cls.__name__}](#{_anchor(kind.cls.__name__)})"
        if isinstance(kind, mi.AnyType):
            return "any JSON"
        raise TypeError(f"no rendering for {kind!r}")

    @staticmethod
    def _limits(kind: mi.StrType) -> str:
        limits = []
        if kind.pattern == NOT_BLANK:
            limits.append("not blank")
        elif kind.pattern is not None:
            limits.append(f"matching `{kind.pattern}`")
        if kind.min_length is not None:
            limits.append(f"at least {kind.min_length} characters")
        if kind.max_length is not None:
            limits.append(f"at most {kind.max_length} characters")
        return f" ({', '.join(limits)})" if limits else ""

    def fields(self, info: mi.StructType, *, skip: Iterable[str] = (), required_word: str) -> list[str]:
        rows = [f"| field | type | {required_word} | description |", "| --- | --- | --- | --- |"]
        # A field that defaults to UNSET is left out of the JSON when it is not set; others are always there.
        left_out = {f.encode_name for f in msgspec.structs.fields(info.cls) if f.default is msgspec.UNSET}
        for field in info.fields:
            if field.encode_name in skip:
                continue
            _kind, description = _unwrap(field.type)
            present = field.required if required_word == "required" else field.encode_name not in left_out
            rows.append(
                f"| `{field.encode_name}` | {_cell(self.type_name(field.type))} | "
                f"{'yes' if present else 'no'} | {_cell(description)} |"
            )
        return rows if len(rows) > 2 else []


def _headings() -> dict[type, str]:
    """Each message's heading: its type, and for a type used twice, who sends it or whom it is for."""
    client = [wire_type(c) for c in CLIENT_MESSAGES]
    server = [wire_type(c) for c in SERVER_MESSAGES]
    headings: dict[type, str] = {}
    for sent in CLIENT_MESSAGES:
        tag = wire_type(sent)
        headings[sent] = f"`{tag}` (from {_senders(sent)})" if tag in server else f"`{tag}`"
    for received in SERVER_MESSAGES:
        tag = wire_type(received)
        twice = tag in client or server.count(tag) > 1
        headings[received] = f"`{tag}` (to {AUDIENCES[received.audience]})" if twice else f"`{tag}`"
    return headings


def _anchor(heading: str) -> str:
    # GitHub's rule: lower case, punctuation other than - and _ dropped, spaces to -.
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _senders(cls: type[ClientMessage]) -> str:
    if cls.senders == frozenset(SENDERS):
        return "anyone"
    return ", ".join(SENDERS[s] for s in SENDERS if s in cls.senders)


def _summary_row(cls: type, heading: str, who: str) -> str:
    return f"| [{heading}](#{_anchor(heading)}) | {who} | {_cell(_summary(cls))} |"


def render() -> str:
    """The generated block, markers included."""
    headings = _headings()
    out = Renderer(headings)
    lines = [
        START,
        "<!-- Rendered from server/signalling/messages.py and server/calls/payloads.py by `make docs`;",
        "     edit those, not this block (a test fails when it is stale). -->",
        "",
        "### Client → server",
        "",
    ]
    base = mi.type_info(ClientMessage)
    assert isinstance(base, mi.StructType)
    id_field = next(f for f in base.fields if f.encode_name == "id")
    lines += [
        f"Every message may carry `id`: {out.type_name(id_field.type)}. {_unwrap(id_field.type)[1]}",
        "",
        "| type | who may send | what it does |",
        "| --- | --- | --- |",
    ]
    lines += [_summary_row(c, headings[c], _senders(c)) for c in CLIENT_MESSAGES]
    for cls in CLIENT_MESSAGES:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        lines += ["", f"#### {headings[cls]}", "", f"Who may send it: {_senders(cls)}.", "", _doc(cls)]
        table = out.fields(info, skip=("id",), required_word="required")
        lines += ["", *table] if table else []

    lines += [
        "",
        "### Server → client",
        "",
        "A field marked “no” under “always sent” is left out of the message when it does not apply.",
        "",
        "| type | to | when |",
        "| --- | --- | --- |",
    ]
    lines += [_summary_row(c, headings[c], AUDIENCES[c.audience]) for c in SERVER_MESSAGES]
    for received in SERVER_MESSAGES:
        info = mi.type_info(received)
        assert isinstance(info, mi.StructType)
        lines += ["", f"#### {headings[received]}", "", f"To: {AUDIENCES[received.audience]}.", "", _doc(received)]
        table = out.fields(info, required_word="always sent")
        lines += ["", *table] if table else []

    # Parts are rendered once each, sorted by name; a part's fields may name further parts.
    parts: dict[str, list[str]] = {}
    while pending := [(cls, info) for cls, info in out.parts.items() if cls.__name__ not in parts]:
        for cls, info in pending:
            described = [_doc(cls), ""] if _doc(cls) else []
            parts[cls.__name__] = [
                "",
                f"#### {cls.__name__}",
                "",
                *described,
                *out.fields(info, required_word="always sent"),
            ]
    lines += ["", "### Parts of messages"]
    for name in sorted(parts):
        lines += parts[name]
    return "\n".join([*lines, END])


def update(document: str) -> str:
    """``document`` with its generated block replaced by a fresh one."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"docs/protocol.md has no {START} ... {END} block")
    return document[:start] + render() + document[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/protocol.md is stale; write nothing")
    args = parser.parse_args(argv)
    current = PROTOCOL_MD.read_text()
    fresh = update(current)
    if args.check:
        if fresh != current:
            print("docs/protocol.md is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        PROTOCOL_MD.write_text(fresh)
        print(f"wrote {PROTOCOL_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
