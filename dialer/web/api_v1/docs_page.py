"""The CRM API's reference page (`/api/v1/docs`), rendered on the server from the OpenAPI
document.

Why on the server, not a JavaScript viewer: the page must work offline and under the web
server's `default-src 'self'` policy (no CDN), and the usual viewers (Swagger UI, ReDoc) are
hundreds of kilobytes of third-party script to vendor and keep patched. Rendering the same
OpenAPI document into plain HTML takes a page of code, needs no script at all, and cannot
drift from the API: both come from the routes. Everything from the document is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["render"]

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccd}
.op{border:1px solid #dde;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}
.GET{color:#0a6b3d}.POST{color:#1450a3}.PATCH,.PUT{color:#8a5a00}.DELETE{color:#a31414}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f5f6f9;padding:.5rem;overflow:auto;max-height:22rem}
table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.2rem .5rem;text-align:left}
.scope{background:#eef;border-radius:4px;padding:0 .3rem}
"""


def _schema_text(schema: Any, doc: dict[str, Any]) -> str:
    """A compact JSON rendering of a schema, references resolved one level."""
    if isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = doc.get("components", {}).get("schemas", {}).get(name, {})
        return f"{name}\n" + json.dumps(target, indent=1, ensure_ascii=False)[:6000]
    return json.dumps(schema, indent=1, ensure_ascii=False)[:6000]


def _operation(method: str, path: str, op: dict[str, Any], doc: dict[str, Any]) -> str:
    out = [f'<div class="op"><div><span class="m {method}">{method}</span> '
           f"<code>{escape(path)}</code></div>"]
    if op.get("summary"):
        out.append(f"<p><b>{escape(op['summary'])}</b></p>")
    if op.get("description"):
        out.append(f"<p>{escape(op['description']).replace(chr(10) + chr(10), '<br><br>')}</p>")
    params = op.get("parameters") or []
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th>"
                   "<th>about</th></tr>")
        for p in params:
            schema = p.get("schema", {})
            kind = schema.get("type") or ", ".join(
                s.get("type", "?") for s in schema.get("anyOf", []))
            out.append(f"<tr><td><code>{escape(p.get('name', ''))}</code></td>"
                       f"<td>{escape(p.get('in', ''))}</td><td>{escape(str(kind))}</td>"
                       f"<td>{'yes' if p.get('required') else ''}</td>"
                       f"<td>{escape(p.get('description', '') or '')}</td></tr>")
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body.get("schema"):
        out.append("<details><summary>request body</summary><pre>"
                   f"{escape(_schema_text(body['schema'], doc))}</pre></details>")
    for code, resp in sorted((op.get("responses") or {}).items()):
        out.append(f"<div><code>{escape(str(code))}</code> "
                   f"{escape(resp.get('description', ''))}</div>")
    out.append("</div>")
    return "".join(out)


def render(doc: dict[str, Any]) -> str:
    """The whole page: title, scopes, then every operation grouped by tag."""
    info = doc.get("info", {})
    groups: dict[str, list[str]] = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(_operation(method.upper(), path, op, doc))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(info.get('title', 'API'))}</title>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(info.get('title', 'API'))} <small>{escape(info.get('version', ''))}"
        "</small></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3).</p>',
        "<nav>" + " · ".join(f'<a href="#{escape(t)}">{escape(t)}</a>' for t in groups)
        + "</nav>",
    ]
    for tag, ops in groups.items():
        parts.append(f'<h2 id="{escape(tag)}">{escape(tag)}</h2>')
        parts.extend(ops)
    parts.append("</body></html>")
    return "".join(parts)
