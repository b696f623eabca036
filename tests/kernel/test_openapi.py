"""The OpenAPI documents are complete: a model for every success, the error shape for every
failure, 415 and 413 wherever a body is read, HTML where the answer is a page, JSON Schema's
integers; and /docs is Swagger UI served by the service itself, with nothing from elsewhere."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

import pytest

from mlops.kernel.config import Settings
from mlops.kernel.examples import ABRIDGED
from mlops.kernel.walkthrough import EXPERIMENT_TAGS
from mlops.kernel.web.openapi import openapi_path
from mlops.kernel.web.openapi_examples import example_names
from mlops.kernel.web.state import state_of
from mlops.ml.app import create_app as ml_app
from mlops.monitoring.app import create_app as monitoring_app
from mlops.simulator.app import create_app as simulator_app
from mlops.simulator.schemas import SetLoaded
from mlops.tracking.app import create_app as tracking_app
from mlops.tracking.schemas import ExperimentInformation, OptimizationLogged, RunInformation, RunList
from tests.support.tracking import WALKTHROUGH_STATISTICS

FACTORIES = {"simulator": simulator_app, "ml": ml_app, "tracking": tracking_app, "monitoring": monitoring_app}


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"))
    apps = {name: factory(settings) for name, factory in FACTORIES.items()}
    yield apps
    for app in apps.values():
        state_of(app).dispose()


@pytest.fixture(scope="module")
def documents(apps):
    return {name: app.test_client().get("/openapi.json").get_json() for name, app in apps.items()}


def operations_of(document):
    for path, methods in document["paths"].items():
        for method, item in methods.items():
            yield f"{method.upper()} {path}", item


def resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_success_has_a_model_and_every_failure_the_error_shape(documents):
    seen = 0
    for service, document in documents.items():
        for label, item in operations_of(document):
            seen += 1
            responses = item["responses"]
            successes = {status: r for status, r in responses.items() if status.startswith("2")}
            assert successes, f"{service} {label}: no 2xx documented"
            for status, response in successes.items():
                content = response["content"]
                if "application/json" in content:
                    schema = content["application/json"]["schema"]
                    assert "$ref" in schema, f"{service} {label} {status}: {schema}"
                    assert resolve(document, schema).get("properties"), f"{service} {label} {status}: no fields"
                else:
                    assert list(content) == ["text/html"], f"{service} {label}"
                    assert content["text/html"]["schema"] == {"type": "string"}, f"{service} {label}"
            errors = {s: r for s, r in responses.items() if s == "default" or s[0] in "45"}
            assert "default" in errors
            for status, response in errors.items():
                error = resolve(document, response["content"]["application/json"]["schema"])
                assert "error" in error["required"], f"{service} {label} {status}: {error}"
                if not label.split()[1].startswith("/v2"):  # the Open Inference Protocol's own {"error"}
                    assert error["required"] == ["error", "message"], f"{service} {label} {status}"
    assert seen >= 30


def test_every_operation_with_a_body_documents_415_and_413(documents):
    with_body = [
        (service, label, item)
        for service, document in documents.items()
        for label, item in operations_of(document)
        if "requestBody" in item
    ]
    assert len(with_body) >= 10
    for service, label, item in with_body:
        assert {"400", "413", "415"} <= item["responses"].keys(), f"{service} {label}"


def test_the_pages_are_documented_as_html(documents):
    paths = documents["monitoring"]["paths"]
    for page in ("/root/monitoring/report.html", "/root/monitoring/tests.html"):
        assert list(paths[page]["get"]["responses"]["200"]["content"]) == ["text/html"]


def test_integers_are_json_schema_integers_and_whole_number_floats_are_taken(apps, documents):
    load_set = documents["simulator"]["components"]["schemas"]["LoadSet"]
    size = load_set["properties"]["size"]["anyOf"][0]
    assert size["type"] == "integer"
    answer = apps["simulator"].test_client().post("/root/simulator", json={"set_name": "production", "size": 50.0})
    assert answer.status_code == 200, answer.get_json()


def test_a_json_answer_takes_the_model_documented_for_it(apps):
    client = apps["simulator"].test_client()
    assert SetLoaded.model_validate(client.post("/root/simulator", json={"set_name": "training"}).get_json())
    status = client.get("/root/simulator").get_json()
    assert set(status["sets"]) == {"training", "production"}


# The walkthrough's own answers (shared/spec/walkthrough.md) fit the models documented for them.
WALKTHROUGH_ANSWERS = [
    (
        OptimizationLogged,
        {
            "message": "Experiments retrieved successfully",
            "data": {
                "experiment_id": "1",
                "run_ids": {
                    "LogisticRegression": "5f69f7ee0507453e9787991521adeb82",
                    "RandomForest": "2d8371356f1f4665b7697d732f5da3f3",
                    "SVC": "0b9f23e1f0c046d39b39e4b0add4ac95",
                },
            },
        },
    ),
    (
        RunList,
        {
            "message": "Experiment Runs Retrieved",
            "data": [
                {
                    "run_id": "0b9f23e1f0c046d39b39e4b0add4ac95",
                    "status": "FINISHED",
                    "start_time": "2024-10-30 20:44:21",
                    "end_time": "2024-10-30 20:44:22",
                    "run_name": "SVC Grid_Search_Opt and CV_Performance",
                    "tags": {"model_type": "SVC", "experiment_type": "GridSearch_CrossValidation"},
                }
            ],
        },
    ),
    (
        ExperimentInformation,
        {
            "message": "Information Retrieved",
            "data": {
                "experiment_info": {
                    "experiment_id": "1",
                    "experiment_name": "wine_test",
                    "artifact_location": "/app/mlruns/1",
                    "lifecycle_stage": "active",
                    "tags": EXPERIMENT_TAGS,
                    "data_creation": "2024-10-30 20:44:16",
                    "last_updated": "2024-10-30 20:44:16",
                },
                "experiment_runs": {
                    "number_of_runs": 3,
                    "completed_runs": 3,
                    "failed_runs": 0,
                    "active_runs": 0,
                    "stopped_runs": 0,
                    "first_run_completed": "2024-10-30 20:44:16",
                    "last_run_completed": "2024-10-30 20:44:22",
                },
            },
        },
    ),
    (
        ExperimentInformation,
        {
            "message": "Best model and run retrieved successfully.",
            "data": {
                "run_id": "5f69f7ee0507453e9787991521adeb82",
                "run_name": "LogisticRegression Grid_Search_Opt and CV_Performance",
                "model": "LogisticRegression",
                "metrics": {"model_accuracy": 0.9245283018867925},
            },
        },
    ),
    (
        ExperimentInformation,
        {
            "message": "Statistics Retrieved",
            "data": {"accuracy": WALKTHROUGH_STATISTICS["accuracy"]},
        },
    ),
    (RunInformation, {"message": "Parameters Retrieved", "data": {"C": "[0.1, 1]", "cv_folds": "5"}}),
    (RunInformation, {"message": "Parameters Retrieved", "data": {"cpu_usage": 18.6, "execution_time": 0.074}}),
]


@pytest.mark.parametrize(("model", "answer"), WALKTHROUGH_ANSWERS)
def test_the_walkthroughs_answers_fit_their_models(model, answer):
    assert model.model_validate(answer).model_dump(exclude_unset=True) == answer


def test_docs_is_swagger_ui_served_offline(apps):
    for service, app in apps.items():
        client = app.test_client()
        page = client.get("/docs")
        assert page.status_code == 200 and page.mimetype == "text/html"
        text = page.get_data(as_text=True)
        assert "SwaggerUIBundle" in text and '"url": "/openapi.json"' in text
        assert '"validatorUrl": null' in text  # else Swagger UI sends the document to validator.swagger.io
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), f"{service}: loads from elsewhere"
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "http" not in policy
        assets = re.findall(r"(?:src|href)=\"(/docs/assets/[^\"]+)\"", text)
        assert len(assets) == 4
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and len(served.data) > 500, asset
    refused = apps["ml"].test_client().get("/docs/assets/..%2fpyproject.toml")
    assert refused.status_code == 404 and set(refused.get_json()) == {"error", "message"}


def test_rules_across_fields_are_stated_where_json_schema_can_state_them(apps, documents):
    """What the schema says is refused, the service refuses, and the other way round."""
    import jsonschema_rs  # schemathesis's own validator

    cases = {
        ("simulator", "/root/simulator", "LoadSet"): [
            ({"set_name": "production", "size": 30}, True),
            ({"set_name": "testing", "size": 30}, False),
            ({"set_name": "testing", "seed": None}, True),
            ({"set_name": "production", "size": 2_000_000, "scenario": {}}, False),
            ({"set_name": "production", "scenario": {"class_weights": [0, 0, 0]}}, False),
            ({"set_name": "production", "scenario": {"class_weights": [1, -1e308, 1]}}, False),
            ({"set_name": "production", "scenario": {"class_weights": [1e308, 1e308, 1e308]}}, True),
            ({"set_name": "production", "scenario": {"class_weights": [1e-320, 0, 0]}}, True),
            ({"set_name": "production", "scenario": {"shift": {"alcool": 1.0}}}, False),
            ({"set_name": "production", "scenario": {"shift": {"proline": 1e308}}}, False),
            ({"set_name": "production", "scenario": {"shift": {"proline": -1000}}}, True),
            ({"set_name": "production", "scenario": {"scale": {"ash": -0.5}}}, False),
        ],
        ("monitoring", "/root/monitoring", "MonitoringRequest"): [
            ({"metric": "verdict", "reference": "testing"}, True),
            ({"metric": "tests", "reference": "testing"}, False),
            ({"metric": "summary", "tests": {"data_drift": True}}, True),
            ({"metric": "summary", "tests": {"data_drift": False}}, False),
            ({"metric": "report", "tests": {"data_drift": True}}, False),
        ],
    }
    for (service, path, name), bodies in cases.items():
        document = documents[service]
        schema = {**document["components"]["schemas"][name], "components": document["components"]}
        schema = jsonschema_rs.Draft202012Validator(schema)
        client = apps[service].test_client()
        for body, valid in bodies:
            assert schema.is_valid(body) is valid, (name, body)
            if not valid:  # the service refuses it too, naming the rule
                assert client.post(path, json=body).status_code == 400, (name, body)


def validator(document, schema):
    import jsonschema_rs  # schemathesis's own validator

    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def test_every_success_status_has_an_example_and_every_example_request_is_valid(apps, documents):
    """The examples the routes declare are in the document: an answer for every 2xx, and request
    bodies and parameters that the schema and the operation's own request model both take."""
    sent = 0
    for service, document in documents.items():
        operations = {(op.method, openapi_path(op.rule)): op for op in state_of(apps[service]).operations}
        for label, item in operations_of(document):
            method, path = label.split(" ", 1)
            op = operations[method, path]
            for status, response in item["responses"].items():
                shown = [e for content in response.get("content", {}).values() for e in content.get("examples", {})]
                if status.startswith("2"):
                    assert shown, f"{service} {label}: no example answers {status}"
            body = item.get("requestBody", {}).get("content", {}).get("application/json", {})
            for example in body.get("examples", {}).values():
                validator(document, body["schema"]).validate(example["value"])
                op.body.model_validate_json(json.dumps(example["value"]))  # the route's own model
                sent += 1
            for parameter in item.get("parameters", []):
                for name, example in parameter.get("examples", {}).items():
                    assert validator(document, parameter["schema"]).is_valid(example["value"]), (label, name)
            if op.query is not None:
                for example in op.examples:
                    if example.status != 400:
                        op.query.model_validate(dict(parse_qsl(example.query)))
            declared = set(example_names(op.examples))
            listed = {
                name
                for response in item["responses"].values()
                for content in response.get("content", {}).values()
                for name in content.get("examples", {})
            }
            assert listed == declared, f"{service} {label}: an example is missing from the document"
    assert sent >= 30


def test_a_success_examples_answer_fits_its_schema_unless_abridged(documents):
    checked = 0
    for service, document in documents.items():
        for label, item in operations_of(document):
            for status, response in item["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                for name, example in content.get("examples", {}).items():
                    if not status.startswith("2") or ABRIDGED in json.dumps(example["value"], ensure_ascii=False):
                        continue
                    errors = [e.message for e in validator(document, content["schema"]).iter_errors(example["value"])]
                    assert not errors, f"{service} {label} {status} {name}: {errors}"
                    checked += 1
    assert checked >= 30


def test_an_error_example_names_its_request_and_leaves_the_words_to_the_service(documents):
    answers = documents["ml"]["paths"]["/root/ml"]["post"]["responses"]["409"]["content"]["application/json"]
    example = answers["examples"]["evaluating_before_training"]
    assert "value" not in example
    assert example["summary"] == "Evaluating before training"
    assert 'POST /root/ml {"dataset": "testing"}' in example["description"]
    assert 'after ml: POST /root/ml/set_model {"model_name": "SVC"' in example["description"]
    body = documents["simulator"]["paths"]["/root/simulator"]["post"]["requestBody"]["content"]["application/json"]
    assert "an_unknown_set" not in body["examples"], "a refused request is no request example"
