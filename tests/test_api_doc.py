"""docs/API.md cannot drift from the services: it is what `python -m mlops.apidoc` writes from
their OpenAPI documents, it names every path and method they serve, and its examples are
requests their models accept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlops import apidoc

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


@pytest.fixture(scope="module")
def apis() -> list[apidoc.ServiceApi]:
    return apidoc.build_service_apis()


def test_api_doc_is_what_the_generator_writes(apis):
    assert apidoc.check_examples(apis) == []
    assert API_DOC.read_text(encoding="utf-8") == apidoc.render(apis), (
        "docs/API.md is out of date: run `.venv/bin/python -m mlops.apidoc` and commit docs/API.md"
    )


def test_api_doc_has_every_path_and_method_of_every_service(apis):
    headings = {line for line in API_DOC.read_text(encoding="utf-8").splitlines() if line.startswith("### ")}
    served = {
        f"### {method.upper()} {path}"
        for api in apis
        for path, methods in api.document["paths"].items()
        for method in methods
    }
    assert len(apis) == 4
    assert {"### POST /root/simulator", "### POST /root/ml", "### POST /root/monitoring"} <= served
    assert "### POST /root/tracking/model_management" in served
    assert served - headings == set()


def test_openapi_documents_are_built_in_process_with_the_default_urls(apis):
    assert {api.name: api.base_url for api in apis} == {
        "simulator": "http://127.0.0.1:5004",
        "ml": "http://127.0.0.1:5001",
        "tracking": "http://127.0.0.1:5002",
        "monitoring": "http://127.0.0.1:5003",
    }


def test_a_stale_example_or_an_endpoint_without_one_is_reported(apis, monkeypatch):
    key = ("simulator", "POST", "/root/simulator")
    stale = dataclasses.replace(apidoc.EXAMPLES[key][0], body={"set": "training"})
    undocumented_status = dataclasses.replace(apidoc.EXAMPLES[key][0], status=418)
    examples = {k: v for k, v in apidoc.EXAMPLES.items() if k != ("ml", "GET", "/root/ml")}
    examples[key] = [stale, undocumented_status]
    examples[("ml", "GET", "/root/ml/nowhere")] = []
    monkeypatch.setattr(apidoc, "EXAMPLES", examples)

    problems = "\n".join(apidoc.check_examples(apis))

    assert "no example for ml GET /root/ml:" in problems
    assert "an example for ml GET /root/ml/nowhere, which no service has" in problems
    assert "'Load the training set': the request model refuses it" in problems
    assert "answers 418, a status the endpoint does not document" in problems


def test_check_mode_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    output = tmp_path / "API.md"
    output.write_text("# old\n")
    assert apidoc.main(["--check", "--output", str(output)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert apidoc.main(["--output", str(output)]) == 0
    assert apidoc.main(["--check", "--output", str(output)]) == 0
    assert output.read_text() == API_DOC.read_text()
