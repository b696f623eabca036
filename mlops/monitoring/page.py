"""The verdict section at the top of the monitoring HTML pages: the answer first, then every check."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from mlops.monitoring.verdict import FALSE_ALARM_LEVEL, FAMILY_LEVEL, Verdict, describe

# Inline styles only: the pages' Content-Security-Policy allows inline styles and nothing fetched.
_BOX = "font-family:sans-serif;margin:16px;padding:12px 16px;border-radius:6px;border:2px solid {color};background:{background}"
_ADVISED = ("#b3261e", "#fdecea")
_NOT_ADVISED = ("#1e6b35", "#eaf6ec")
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)


def with_verdict_section(page: str, verdict: Verdict) -> str:
    """The page with the verdict's section right after its <body> tag (at the start if it has none)."""
    section = verdict_section(verdict)
    match = _BODY.search(page)
    if match is None:
        return section + page
    return page[: match.end()] + section + page[match.end() :]


def verdict_section(verdict: Verdict) -> str:
    """The verdict as an HTML block: a coloured headline, its one-sentence reason, then a table of every check."""
    color, background = _ADVISED if verdict.retraining_advised else _NOT_ADVISED
    headline = "Re-training advised" if verdict.retraining_advised else "No re-training advised"
    rows = "".join(_row(reason) for reason in verdict.reasons)
    return (
        f'<section id="verdict" style="{_BOX.format(color=color, background=background)}">'
        f'<h2 style="margin:0 0 6px 0;color:{color}">{headline}</h2>'
        f'<p style="margin:0 0 8px 0">{escape(verdict.message())}</p>'
        f"<details><summary>All {len(verdict.reasons)} checks (each family at "
        f"{FAMILY_LEVEL:.2%}, {FALSE_ALARM_LEVEL:.0%} in all)</summary>"
        '<table style="border-collapse:collapse;font-size:13px;margin-top:6px">'
        "<tr><th align=left>check</th><th align=left>fired</th><th align=left>effect</th>"
        "<th align=right>p-value</th><th align=right>adjusted</th><th align=right>threshold</th>"
        "<th align=right>rows (ref / cur)</th></tr>"
        f"{rows}</table></details></section>"
    )


def _row(reason: dict[str, Any]) -> str:
    name = reason["check"] + (f": {reason['feature']}" if "feature" in reason else "")
    effect = reason["note"] if "note" in reason else describe(reason)
    cells = [
        escape(name),
        "<b>yes</b>" if reason["fired"] else "no",
        escape(effect),
        _number(reason.get("p_value")),
        _number(reason.get("adjusted_p_value")),
        _number(reason["threshold"]),
        f"{reason['sizes']['reference']} / {reason['sizes']['current']}",
    ]
    style = ' style="background:#fff3cd"' if reason["fired"] else ""
    return f"<tr{style}>" + "".join(f'<td style="padding:2px 8px">{cell}</td>' for cell in cells) + "</tr>"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
