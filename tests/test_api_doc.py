"""docs/API.md cannot drift from the services: it is what `make api-doc` (tools/apidoc.py) writes
from their OpenAPI documents and examples, it names every path and method they serve, its examples
are requests their models accept, and an error's answer is what the service answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlops.kernel.examples import Example
from tools import apidoc

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


@pytest.fixture(scope="module")
def apis() -> list[apidoc.ServiceApi]:
    return apidoc.build_service_apis()


def test_api_doc_is_what_the_generator_writes(apis):
    assert apidoc.check_examples(apis) == []
    assert API_DOC.read_text(encoding="utf-8") == apidoc.render(apis), (
        "docs/API.md is out of date: run `make api-doc` and commit docs/API.md"
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


def test_a_stale_example_or_an_endpoint_without_one_is_reported(apis):
    key = ("POST", "/root/simulator")
    simulator, ml = (next(api for api in apis if api.name == name) for name in ("simulator", "ml"))
    stale = dataclasses.replace(simulator.examples[key][0], body={"set": "training"})
    undocumented_status = dataclasses.replace(simulator.examples[key][0], status=418)
    unanswered = Example("An answer nobody wrote", body={"set_name": "training"})
    broken = [
        dataclasses.replace(simulator, examples=simulator.examples | {key: [stale, undocumented_status, unanswered]}),
        dataclasses.replace(ml, examples=ml.examples | {("GET", "/root/ml"): []}),
    ]

    problems = "\n".join(apidoc.check_examples(broken))

    assert "no example for ml GET /root/ml:" in problems
    assert "'Load the training set': the request model refuses it" in problems
    assert "answers 418, a status the endpoint does not document" in problems
    assert "'An answer nobody wrote': has no answer" in problems


def test_an_error_example_answers_what_the_service_answers(apis):
    ml = next(api for api in apis if api.name == "ml")
    [before_training] = [e for e in ml.examples[("POST", "/root/ml")] if e.title == "Evaluating before training"]
    assert before_training.response == {
        "error": "Model not trained",
        "message": "The deployed SVC model (version 1) is not trained yet: "
        'train it first with POST /root/ml {"dataset": "training"}',
    }
    typed = Example("Typed by hand", {"error": "Old", "message": "copied"}, body={"set_name": "x"}, status=400)
    simulator = dataclasses.replace(
        next(api for api in apis if api.name == "simulator"), examples={("POST", "/root/simulator"): [typed]}
    )
    with pytest.raises(ValueError, match="typed by hand"):
        apidoc.answer_errors([simulator])


def test_check_mode_fails_on_a_stale_file_and_passes_on_a_fresh_one(apis, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(apidoc, "build_service_apis", lambda: apis)
    output = tmp_path / "API.md"
    output.write_text("# old\n")
    assert apidoc.main(["--check", "--output", str(output)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert apidoc.main(["--output", str(output)]) == 0
    assert apidoc.main(["--check", "--output", str(output)]) == 0
    assert output.read_text() == API_DOC.read_text()


def test_the_doc_tooling_is_not_in_the_installed_package():
    import mlops

    assert not (Path(mlops.__file__).parent / "apidoc.py").exists()
    assert (API_DOC.parent.parent / "tools" / "apidoc.py").exists()
