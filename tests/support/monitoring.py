"""Helpers of the monitoring tests: sets loaded and evaluated as the other services would, requests
sent, and checks of Evidently's JSON and HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from mlops.kernel.datasets import read_set, replace_predictions


def evaluate(engine, model, name: str, model_version: int = 1) -> None:
    """Predict a stored set with model and store the predictions, as the ML service's evaluation does."""
    with engine.begin() as connection:
        stored = read_set(connection, name)
        predicted = model.predict(stored.features)
        replace_predictions(connection, stored.dataset_id, stored.features.index, predicted, model_version)


def monitor(client, metric: str, **extra):
    """POST /root/monitoring {"metric": metric, ...} and return the response."""
    return client.post("/root/monitoring", json={"metric": metric, **extra})


def metric_results(report: dict, name: str) -> list[dict]:
    """The results of every metric of that name in Evidently's report JSON."""
    return [metric["result"] for metric in report["metrics"] if metric["metric"] == name]


class ResourceFinder(HTMLParser):
    """Collect what an HTML page would load: tags' src/href, its style sheets and inline scripts."""

    def __init__(self):
        super().__init__()
        self.references: list[str] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        for name in ("src", "href", "data", "srcset", "poster"):
            if attributes.get(name):
                self.references.append(f"<{tag} {name}={attributes[name]}>")
        if tag == "script" and "src" not in attributes:
            self.inline_scripts += 1

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "style":
            self.styles.append(data)


def assert_self_contained(page: str) -> None:
    """The page is whole, draws Evidently's dashboard from inline script and data, and loads nothing."""
    assert page.lstrip().startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    finder = ResourceFinder()
    finder.feed(page)
    assert finder.references == []
    assert {"html", "head", "body", "script", "style"} <= set(finder.tags)
    assert finder.inline_scripts >= 3  # data, Evidently's library, the call that draws
    assert "window.drawDashboard(" in page
    styles = "".join(finder.styles)
    assert "url(data:font/ttf;base64," in styles  # the icon font is inline too
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", styles)
