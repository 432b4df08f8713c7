"""GET /api/docs: the OpenAPI document as one readable page, by tag, each operation with its auth, parameters,
body and answers, then every schema. Everything shown is escaped; the page has no scripts and no inline styles
(only /static/css/app.css), so it keeps to the same Content-Security-Policy as every other page."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence
from typing import Any

Schema = dict[str, Any]


def _deref(doc: dict[str, Any], item: Any) -> Any:
    while isinstance(item, dict) and "$ref" in item:
        node: Any = doc
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def _ref_name(schema: Any) -> str | None:
    if isinstance(schema, dict) and "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return None


def _type_html(schema: Schema, *, expand: bool = False) -> str:
    """The schema's type as HTML: a named schema links to its table; ``expand`` lists an inline object's fields."""
    name = _ref_name(schema)
    if name is not None:
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type_html(s) for s in schema[key])
    kinds = schema.get("type", "any")
    labels = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array":
            labels.append(f"array of {_type_html(schema.get('items', {}))}")
        elif kind == "object" and expand and schema.get("properties"):
            fields = ", ".join(
                f"<code>{html.escape(field)}</code>: {_type_html(item)}" for field, item in schema["properties"].items()
            )
            labels.append(f"object {{{fields}}}")
        elif "format" in schema and kind != "null":
            labels.append(f"{html.escape(str(kind))} ({html.escape(schema['format'])})")
        else:
            labels.append(html.escape(str(kind)))
    return " or ".join(labels)


def _constraints(schema: Schema) -> str:
    parts = []
    branches = [_constraints(s) for s in schema.get("oneOf") or schema.get("anyOf") or ()]
    if any(branches):
        parts.append(" or ".join(b for b in branches if b))
    if "enum" in schema:
        parts.append("one of " + ", ".join(json.dumps(v) for v in schema["enum"] if v is not None))
    if schema.get("items"):
        parts.append(_constraints(schema["items"]))
    for key, text in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
        ("pattern", "matches {}"),
        ("default", "default {}"),
    ):
        if key in schema:
            value = schema[key]
            parts.append(text.format(json.dumps(value) if key in ("default", "pattern") else value))
    return "; ".join(p for p in parts if p)


def _fields(doc: dict[str, Any], schema: Any, prefix: str = "") -> Iterator[tuple[str, Schema, str, str, str]]:
    """(name, schema, required, constraints, description) of each field; inline objects are flattened."""
    schema = _deref(doc, schema)
    required = set(schema.get("required", ()))
    for name, raw in schema.get("properties", {}).items():
        field = _deref(doc, raw)
        yield (
            prefix + name,
            raw,
            "yes" if name in required else "no",
            _constraints(field),
            str(field.get("description", "")),
        )
        if _ref_name(raw) is not None:
            continue  # a named schema has its own table
        if "properties" in field:
            yield from _fields(doc, field, f"{prefix}{name}.")
        items = field.get("items")
        if isinstance(items, dict) and _ref_name(items) is None and "properties" in items:
            yield from _fields(doc, items, f"{prefix}{name}[].")


def _table(caption: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A table of cells that are already HTML (escape before)."""
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _field_rows(doc: dict[str, Any], schema: Any) -> list[tuple[str, ...]]:
    return [
        (
            f"<code>{html.escape(name)}</code>",
            _type_html(kind),
            html.escape(req),
            html.escape(rules),
            html.escape(text),
        )
        for name, kind, req, rules, text in _fields(doc, schema)
    ]


def _base_url(doc: dict[str, Any]) -> str:
    url = str(doc.get("servers", [{"url": "/"}])[0]["url"])
    return "$RAPPORT_URL" if url == "/" else url.rstrip("/")


def _curl(doc: dict[str, Any], method: str, path: str, op: Schema) -> str:
    url = _base_url(doc) + path
    query = []
    for raw in op.get("parameters", ()):
        param = _deref(doc, raw)
        if "example" not in param:
            continue
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", str(param["example"]))
        elif param["in"] == "query":
            query.append(f"{param['name']}={param['example']}")
    if query:
        url += "?" + "&".join(query)
    lines = ['curl -H "Authorization: Bearer $RAPPORT_KEY"']
    if method != "get":
        lines.append(f"-X {method.upper()}")
    example = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    if example is not None:
        lines.append('-H "Content-Type: application/json"')
        lines.append(f"-d '{json.dumps(example, ensure_ascii=False)}'")
    lines.append(f'"{url}"')
    return " \\\n  ".join(lines)


def _auth_html(op: Schema) -> str:
    roles, scope = op.get("x-rapport-roles"), op.get("x-rapport-scope")
    if roles is None and scope is None:
        return "public (no login)"
    parts = []
    if roles is not None:
        parts.append("staff cookie, roles: " + ", ".join(roles))
    if scope is not None:
        parts.append(f"API key with scope {scope}")
    return " · or ".join(parts)


def _operation_html(doc: dict[str, Any], method: str, path: str, op: Schema) -> str:
    op_id = str(op["operationId"])
    out = [
        f'<article class="card" id="{html.escape(op_id)}">',
        f'<h3><span class="badge">{html.escape(method.upper())}</span> <code>{html.escape(path)}</code></h3>',
        f"<p><strong>{html.escape(op['summary'])}</strong></p>",
    ]
    if op.get("description"):
        out.append(f'<p class="muted">{html.escape(op["description"])}</p>')
    out.append("<dl>")
    out.append(f"<dt>Operation</dt><dd><code>{html.escape(op_id)}</code></dd>")
    out.append(f"<dt>Auth</dt><dd>{html.escape(_auth_html(op))}</dd>")
    out.append("</dl>")
    params = [_deref(doc, p) for p in op.get("parameters", ())]
    if params:
        rows = [
            (
                f"<code>{html.escape(p['name'])}</code>",
                html.escape(p["in"]),
                _type_html(p.get("schema", {})),
                "yes" if p.get("required") else "no",
                html.escape(_constraints(p.get("schema", {}))),
                html.escape(str(p.get("description", ""))),
            )
            for p in params
        ]
        out.append(_table("Parameters", ("name", "in", "type", "required", "constraints", "description"), rows))
    body = op.get("requestBody")
    if body:
        caption = "Request body (JSON, " + ("required)" if body.get("required") else "optional)")
        fields = _field_rows(doc, body["content"]["application/json"]["schema"])
        out.append(_table(caption, ("field", "type", "required", "constraints", "description"), fields))
    answers: list[tuple[str, str, str]] = []
    for status, raw in op["responses"].items():
        response = _deref(doc, raw)
        kinds = []
        for media, item in response.get("content", {}).items():
            kinds.append(f"{html.escape(media)}: {_type_html(item.get('schema', {}), expand=True)}")
        answers.append(
            (f"<code>{html.escape(status)}</code>", html.escape(response["description"]), "<br>".join(kinds))
        )
    out.append(_table("Responses", ("status", "meaning", "body"), answers))
    if op.get("x-rapport-scope"):
        out.append("<p>Example:</p>")
        out.append(f"<pre><code>{html.escape(_curl(doc, method, path, op))}</code></pre>")
    out.append("</article>")
    return "\n".join(out)


def render_html(doc: dict[str, Any]) -> str:
    """The document as one readable page: by tag, each operation with its auth, parameters, body and answers."""
    info = doc["info"]
    by_tag: dict[str, list[tuple[str, str, Schema]]] = {t["name"]: [] for t in doc.get("tags", ())}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            by_tag.setdefault(op["tags"][0], []).append((method, path, op))
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", ())}
    schemes = doc["components"]["securitySchemes"]
    out = [
        "<!doctype html>",
        '<html lang="en" dir="ltr">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(info['title'])} {html.escape(info['version'])}</title>",
        '<link rel="icon" href="/static/img/icon.svg" type="image/svg+xml">',
        '<link rel="stylesheet" href="/static/css/app.css">',
        "</head>",
        '<body class="api-docs">',
        '<header class="card">',
        f'<h1>{html.escape(info["title"])} <small class="muted">{html.escape(info["version"])}</small></h1>',
        f"<p>{html.escape(info.get('summary', ''))}</p>",
        f"<p>{html.escape(info.get('description', ''))}</p>",
        '<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> '
        f"(OpenAPI {html.escape(doc['openapi'])}). Server: <code>{html.escape(doc['servers'][0]['url'])}</code></p>",
        "</header>",
        "<main>",
        '<nav class="card" aria-label="Contents"><h2>Contents</h2><ul>',
    ]
    for tag, ops in by_tag.items():
        if not ops:
            continue
        links = ", ".join(
            f'<a href="#{html.escape(op["operationId"])}">{html.escape(op["summary"])}</a>' for _m, _p, op in ops
        )
        out.append(f'<li><a href="#tag-{html.escape(tag)}">{html.escape(tag)}</a>: {links}</li>')
    out.append('<li><a href="#schemas">Schemas</a></li>')
    out.append("</ul></nav>")
    out.append('<section class="card" id="authentication"><h2>Authentication</h2><dl>')
    for name, scheme in schemes.items():
        out.append(f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(scheme.get('description', ''))}</dd>")
    out.append("</dl></section>")
    for tag, ops in by_tag.items():
        if not ops:
            continue
        out.append(f'<section id="tag-{html.escape(tag)}">')
        about = html.escape(tag_text.get(tag, ""))
        out.append(f'<h2 class="card">{html.escape(tag)}<br><small class="muted">{about}</small></h2>')
        out.extend(_operation_html(doc, method, path, op) for method, path, op in ops)
        out.append("</section>")
    out.append('<section id="schemas"><h2 class="card">Schemas</h2>')
    for name, schema in doc["components"]["schemas"].items():
        out.append(f'<article class="card" id="schema-{html.escape(name)}"><h3>{html.escape(name)}</h3>')
        if schema.get("description"):
            out.append(f'<p class="muted">{html.escape(schema["description"])}</p>')
        rows = _field_rows(doc, schema)
        if rows:
            out.append(_table("Fields", ("field", "type", "required", "constraints", "description"), rows))
        out.append("</article>")
    out.append("</section>")
    out.append("</main>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"
