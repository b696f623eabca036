"""The /docs page: every endpoint with its request schema, in one self-contained HTML page."""

from __future__ import annotations

import html
import json
from typing import Any


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML page listing every endpoint and its request schema."""
    rows = []
    for path, methods in document["paths"].items():
        for method, item in methods.items():
            body = item.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            schema = ""
            if body:
                name = body["$ref"].rsplit("/", 1)[-1]
                schema = json.dumps(document["components"]["schemas"][name], indent=2)
            params = ", ".join(p["name"] for p in item.get("parameters", []))
            rows.append(
                f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(item['summary'])}</p>"
                + (f"<p>Query: <code>{html.escape(params)}</code></p>" if params else "")
                + (f"<pre>{html.escape(schema)}</pre>" if schema else "")
                + "<p>Responses: "
                + ", ".join(f"{s} {html.escape(r['description'])}" for s, r in item["responses"].items())
                + "</p></section>"
            )
    title = html.escape(document["info"]["title"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}</style></head>"
        f"<body><h1>{title} API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        + "".join(rows)
        + "</body></html>"
    )
