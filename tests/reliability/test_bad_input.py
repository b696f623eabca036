"""R1 bad input, against every service as a real process on PostgreSQL: property-based fuzzing of
every operation in each service's /openapi.json (schemathesis), deeper fuzzing of the inputs that
reach scikit-learn, and hand-written abuse (malformed JSON, wrong content types, wrong types,
unknown enum values, SQL- and path-like strings in every string field). Every answer is 2xx or a
4xx JSON {"error", "message"}, no process dies, and the walkthrough still passes afterwards."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from mlops.kernel.config import Settings
from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.processes import ServiceProcess, free_port, settings_on_free_ports
from tests.support.reliability import ALL_SERVICES, pick, process_tree, speaks_inference_protocol
from tests.support.stack import (
    MODEL,
    bring_to_walkthrough_state,
    call,
    run_walkthrough,
    start_stack,
    stop_stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

EXAMPLES = pick(12, 200)  # schemathesis examples per operation and generation mode
DEEP_EXAMPLES = pick(20, 300)  # examples of the hand-made strategies below
BACKENDS = pick(["postgresql"], ["sqlite", "postgresql"])
# Production may be resampled to millions of rows; that is a scale test, not an input test.
MAX_FUZZED_SIZE = 2000

CANARY = f"/tmp/mlops-r1-canary-{uuid.uuid4().hex[:8]}"
NASTY_STRINGS = [
    "'; DROP TABLE datasets; --",
    "1 OR 1=1",
    '" OR ""="',
    "../../../../../../etc/passwd",
    "../../../../../.." + CANARY,
    "..\\..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "nul\x00byte",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "ñ😀\u202egnp.exe",
    "",
    " ",
    "x" * 5000,
]
# The short form tries the kinds that have broken services elsewhere; the long form all of them.
NASTY_SHORT = [
    "'; DROP TABLE datasets; --",
    "../../../../../.." + CANARY,
    "nul\x00byte",
    "ñ😀\u202egnp.exe",
    "",
    "x" * 5000,
]


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, tmp_path_factory, postgres_database):
    """Every landed service as a real process on one backend, brought to the walkthrough's state."""
    data_dir = tmp_path_factory.mktemp(f"r1-{request.param}")
    if request.param == "postgresql":
        databases = {"dataset_db_url": postgres_database(), "mlflow_tracking_uri": postgres_database()}
    else:
        databases = {}
    settings = settings_on_free_ports(
        data_dir=data_dir,
        **databases,
    )
    processes = {s: ServiceProcess(s, settings, data_dir / f"{s}.log") for s in ALL_SERVICES}
    try:
        started = start_stack(lambda service, _settings: processes[service].start(), settings, list(processes))
        made = bring_to_walkthrough_state(started, optimize=True)
        trees = {name: sorted(process_tree(p.process.pid)) for name, p in started.items()}
        yield {"processes": started, "made": made, "trees": trees, "data_dir": data_dir}
    finally:
        stop_stack(processes.values())


def judge(response: requests.Response) -> str | None:
    """What is wrong with an answer to bad input, or None: 2xx, or 4xx JSON {"error", "message"}."""
    status = response.status_code
    if status == 503 and urlsplit(response.request.url).path.endswith("/ready"):
        return None  # a readiness probe saying "not yet" (no trained model) answers as it should
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if status >= 400:
        try:
            body = response.json()
        except ValueError:
            return f"{status} without a JSON body: {response.text[:200]!r}"
        if speaks_inference_protocol(response):
            # the protocol's {"error"}; what gunicorn refuses before the app (a request line too long)
            # comes in the suite's shape, which has "error" too
            if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
                return f"{status} JSON without the protocol's error: {str(body)[:200]}"
        elif not (
            isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str)
        ):
            return f"{status} JSON without error/message: {str(body)[:200]}"
    return None


class Findings:
    """Answers that broke the rules, kept (a few per kind) for one readable assertion."""

    def __init__(self) -> None:
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.problems: dict[str, str] = {}

    def add(self, label: str, sent: object, response: requests.Response) -> None:
        self.sent += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        problem = judge(response)
        if problem is not None:
            key = f"{label} -> {problem[:60]}"
            self.problems.setdefault(key, f"{label} with {str(sent)[:300]} -> {problem}")

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(list(self.problems.values())[:15])


# --- schemathesis over each service's OpenAPI document ---------------------------------------------


def limit_size(case):
    """Keep fuzzed production sizes small (see MAX_FUZZED_SIZE)."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("size"), int) and body["size"] > MAX_FUZZED_SIZE:
        body["size"] = MAX_FUZZED_SIZE
    return case


def fuzz_operation(operation, base_url: str, findings: Findings, mode: GenerationMode) -> None:
    """Send EXAMPLES generated requests to one operation and judge each answer."""

    @given(case=operation.as_strategy(generation_mode=mode).map(limit_size))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        print_blob=True,
    )
    def send(case):
        response = case.call(base_url=base_url, timeout=120)
        findings.add(f"{operation.label} ({mode.value})", {"body": case.body, "query": case.query}, response)

    try:
        send()
    except Unsatisfiable:
        pass  # nothing to negate (an operation without body or parameters)


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_fuzzing_every_operation_from_openapi_gives_only_2xx_or_4xx_json(service, stack, record_figures):
    process = stack["processes"][service]
    schema = schemathesis.openapi.from_url(process.url + "/openapi.json")
    findings = Findings()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, process.url, findings, mode)
    assert process.process.poll() is None, f"{service} died"
    assert requests.get(process.url + "/health", timeout=10).status_code == 200
    record_figures(
        f"R1 fuzzing {service}",
        operations=operations,
        requests_sent=findings.sent,
        statuses=dict(sorted(findings.statuses.items())),
        failures=len(findings.problems),
    )
    findings.assert_clean()


# --- deeper fuzzing: values that reach scikit-learn ----------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "auto",
            "scale",
            "sqrt",
            "log2",
            "balanced",
            "l1",
            "l2",
            "elasticnet",
            "liblinear",
            "saga",
            "lbfgs",
            "rbf",
            "linear",
            "poly",
            "sigmoid",
            "precomputed",
            "gini",
            "entropy",
        ]
    ),
)
HYPERPARAMETER_NAMES = {
    "RandomForest": [
        "n_estimators",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "criterion",
        "bootstrap",
        "class_weight",
        "max_leaf_nodes",
        "min_impurity_decrease",
        "max_samples",
        "random_state",
        "ccp_alpha",
        "oob_score",
        "n_jobs",
        "warm_start",
    ],
    "SVC": [
        "C",
        "kernel",
        "degree",
        "gamma",
        "coef0",
        "shrinking",
        "probability",
        "tol",
        "class_weight",
        "max_iter",
        "decision_function_shape",
        "break_ties",
        "random_state",
        "cache_size",
    ],
    "LogisticRegression": [
        "C",
        "solver",
        "penalty",
        "l1_ratio",
        "max_iter",
        "tol",
        "fit_intercept",
        "class_weight",
        "intercept_scaling",
        "dual",
        "random_state",
        "warm_start",
    ],
}
# Values that make training itself huge are a denial of service, not bad input: kept out here
# (test_hyperparameters_that_would_exhaust_the_service_are_refused tries the worst of them).
EXPENSIVE = {
    "n_estimators": 50,
    "max_iter": 1000,
    "cache_size": 1000,
    "degree": 5,
    "n_jobs": 2,
    "max_leaf_nodes": 10_000,
}


@st.composite
def model_specs(draw):
    model = draw(st.sampled_from(sorted(HYPERPARAMETER_NAMES)))
    names = draw(st.lists(st.sampled_from(HYPERPARAMETER_NAMES[model]), max_size=4, unique=True))
    values = {}
    for name in names:
        value = draw(st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=2)))
        if name in EXPENSIVE and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = min(value, EXPENSIVE[name])
        values[name] = value
    return {"model_name": model, "hyperparameters": values}


def test_any_hyperparameters_are_deployed_or_refused_and_training_never_breaks(stack, record_figures):
    ml = stack["processes"]["ml"].url
    findings = Findings()
    deployed = 0

    @given(spec=model_specs())
    @hypothesis_settings(
        max_examples=DEEP_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    def deploy_and_train(spec):
        nonlocal deployed
        answer = requests.post(ml + "/root/ml/set_model", json=spec, timeout=60)
        findings.add("set_model", spec, answer)
        if answer.status_code == 200:
            deployed += 1
            trained = requests.post(ml + "/root/ml", json={"dataset": "training"}, timeout=300)
            findings.add("train", spec, trained)
            if trained.status_code == 200:
                for dataset in ("testing", "production"):
                    findings.add(
                        f"evaluate {dataset}",
                        spec,
                        requests.post(ml + "/root/ml", json={"dataset": dataset}, timeout=300),
                    )
                findings.add("predict", spec, requests.post(ml + "/root/ml/predict", json=[WINE_SAMPLE], timeout=60))
        else:
            assert answer.status_code == 400, f"{spec} -> {answer.status_code} {answer.text[:300]}"

    deploy_and_train()
    record_figures(
        "R1 hyperparameters",
        requests_sent=findings.sent,
        models_deployed=deployed,
        statuses=dict(sorted(findings.statuses.items())),
        failures=len(findings.problems),
    )
    findings.assert_clean()
    # leave a trained model for the tests after this one
    call("POST", ml + "/root/ml/set_model", json=MODEL)
    call("POST", ml + "/root/ml", json={"dataset": "training"})


FEATURE_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0.0, -0.0, 1e-308, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 3.4e38, 3.5e38]),
)


def test_any_feature_values_are_predicted_or_refused(stack, record_figures):
    ml = stack["processes"]["ml"].url
    findings = Findings()

    @given(rows=st.lists(st.fixed_dictionaries({name: FEATURE_VALUES for name in WINE_SAMPLE}), min_size=1, max_size=5))
    @hypothesis_settings(
        max_examples=DEEP_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    def predict(rows):
        answer = requests.post(ml + "/root/ml/predict", json=rows, timeout=60)
        findings.add("predict", rows, answer)
        assert answer.status_code in (200, 400), f"{rows} -> {answer.status_code} {answer.text[:300]}"
        if answer.status_code == 200:
            assert len(answer.json()["predictions"]) == len(rows)

    predict()
    record_figures(
        "R1 feature values",
        requests_sent=findings.sent,
        statuses=dict(sorted(findings.statuses.items())),
        failures=len(findings.problems),
    )
    findings.assert_clean()


# Values scikit-learn may accept for some of the names above, so that grids get past validation
# and into the grid search (where odd combinations fail during fitting).
PLAUSIBLE = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        2,
        3,
        5,
        0.0,
        0.1,
        0.5,
        1.0,
        10.0,
        -1,
        "auto",
        "scale",
        "sqrt",
        "log2",
        "balanced",
        "l1",
        "l2",
        "liblinear",
        "saga",
        "rbf",
        "linear",
        "poly",
        "gini",
        "entropy",
        "ovr",
        "ovo",
    ]
)


@st.composite
def optimization_requests(draw):
    models = draw(st.lists(st.sampled_from(sorted(HYPERPARAMETER_NAMES)), min_size=1, max_size=2, unique=True))
    grids = {}
    for model in models:
        names = draw(st.lists(st.sampled_from(HYPERPARAMETER_NAMES[model]), max_size=2, unique=True))
        grid = {}
        for name in names:
            values = draw(st.lists(st.one_of(PLAUSIBLE, PLAUSIBLE, JSON_SCALARS), min_size=1, max_size=2))
            grid[name] = [
                min(v, EXPENSIVE[name])
                if name in EXPENSIVE and isinstance(v, (int, float)) and not isinstance(v, bool)
                else v
                for v in values
            ]
        grids[model] = grid
    return {
        "request_information": "optimization",
        "experiment_name": draw(st.sampled_from(["r1-fuzz", "r1-fuzz-2"])),
        "experiment_description": "fuzz",
        "experiment_owner": "r1",
        "models": models,
        "hyperparameters": grids,
        "scoring": draw(
            st.sampled_from(["accuracy", "accuracy", "f1_weighted", "roc_auc_ovr", "neg_log_loss", "no_such_score"])
        ),
        "cv": draw(st.sampled_from([2, 2, 3, 3, 1, 0, -1, 40])),
    }


def test_any_optimization_grid_is_logged_or_refused_and_no_run_is_left_running(stack, record_figures):
    tracking = stack["processes"]["tracking"].url
    findings = Findings()
    examples = max(5, DEEP_EXAMPLES // 3)  # each optimization fits models: fewer of them

    @given(body=optimization_requests())
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    def optimize(body):
        answer = requests.post(tracking + "/root/tracking/model_management", json=body, timeout=300)
        findings.add("optimization", body, answer)

    optimize()
    experiments = call("GET", tracking + "/root/tracking/experiments")["data"]
    statuses = set()
    for experiment in experiments:
        runs = call(
            "GET",
            tracking + "/root/tracking/runs",
            params={"experiment_id": experiment["experiment_id"]},
            expect=(200, 404),
        )
        statuses |= {run["status"] for run in runs.get("data", [])}
    record_figures(
        "R1 optimization grids",
        requests_sent=findings.sent,
        statuses=dict(sorted(findings.statuses.items())),
        failures=len(findings.problems),
        run_statuses=sorted(statuses),
    )
    findings.assert_clean()
    assert "RUNNING" not in statuses, "a failed optimization left a run RUNNING"


# Values the schema and scikit-learn's own parameter checks accept, that the long-form fuzzing
# found crashing the service (500) or exhausting it: each must be refused with a 4xx (or, where the
# machine can after all, trained), never a 5xx, and the service unharmed.
EXHAUSTING_MODELS = [
    {"model_name": "RandomForest", "hyperparameters": {"max_leaf_nodes": 2**62}},  # MemoryError
    {"model_name": "RandomForest", "hyperparameters": {"n_jobs": 100_000}},  # a thread per job
]


@pytest.mark.parametrize("spec", EXHAUSTING_MODELS, ids=lambda spec: next(iter(spec["hyperparameters"])))
def test_hyperparameters_that_would_exhaust_the_service_are_refused(spec, tmp_path, start_service):
    # services of its own: a failure here must not take the module's stack down with it
    settings = Settings(data_dir=tmp_path, simulator_port=free_port(), ml_port=free_port())
    simulator, ml = start_service("simulator", settings), start_service("ml", settings)
    call("POST", simulator.url + "/root/simulator", json={"set_name": "training"})
    answer = requests.post(ml.url + "/root/ml/set_model", json=spec, timeout=60)
    if answer.status_code == 200:
        answer = requests.post(ml.url + "/root/ml", json={"dataset": "training"}, timeout=300)
    # refused (4xx JSON), or trained if the machine could after all; never a 5xx or a broken service
    assert judge(answer) is None and answer.status_code < 500, f"{spec} -> {answer.status_code} {answer.text[:300]}"
    call("POST", ml.url + "/root/ml/set_model", json=MODEL)
    call("POST", ml.url + "/root/ml", json={"dataset": "training"})
    assert call("POST", ml.url + "/root/ml/predict", json=[WINE_SAMPLE])["predictions"]


HUGE_IDS = [2**70, "99999999999999999999999", 2**63, "-1"]


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        "postgresql",
    ],
)
def test_experiment_ids_beyond_64_bits_are_not_found_on_either_backend(
    backend, tmp_path, start_service, postgres_database
):
    mlflow = {"mlflow_tracking_uri": postgres_database()} if backend == "postgresql" else {}
    tracking = start_service("tracking", Settings(data_dir=tmp_path, tracking_port=free_port(), **mlflow)).url
    findings = Findings()
    for experiment_id in HUGE_IDS:
        for method, path, kwargs in (
            (
                "POST",
                "/root/tracking/experiments",
                {"json": {"experiment_id": experiment_id, "request_information": "general"}},
            ),
            ("GET", "/root/tracking/runs", {"params": {"experiment_id": experiment_id}}),
            ("DELETE", "/root/tracking/experiments", {"params": {"experiment_id": experiment_id}}),
            (
                "POST",
                "/root/tracking/runs",
                {
                    "json": {
                        "experiment_id": experiment_id,
                        "run_id": "0" * 32,
                        "request_information": "metrics",
                        "type": "model",
                    }
                },
            ),
        ):
            answer = requests.request(method, tracking + path, timeout=60, **kwargs)
            findings.add(f"{method} {path}", kwargs, answer)
            assert 400 <= answer.status_code < 500, (
                f"{method} {path} {kwargs} -> {answer.status_code}: {answer.text[:200]}"
            )
    findings.assert_clean()


# --- hand-written bad input on every operation ----------------------------------------------------------


def base_bodies(stack) -> dict[tuple[str, str], object]:
    """A valid body for each operation we know (the walkthrough's), to spoil one field at a time."""
    made = stack["made"]
    optimization = made.get("optimization") or {"experiment_id": "1", "run_ids": {"LogisticRegression": "0" * 32}}
    experiment_id = optimization["experiment_id"]
    run_id = optimization["run_ids"]["LogisticRegression"]
    return {
        ("POST", "/root/simulator"): {"set_name": "testing"},
        ("POST", "/root/ml/set_model"): MODEL,
        ("POST", "/root/ml"): {"dataset": "testing"},
        ("POST", "/root/ml/predict"): [WINE_SAMPLE],
        ("POST", "/root/tracking/model_management"): {
            "request_information": "optimization",
            "experiment_name": "r1-strings",
            "experiment_description": "hand-written bad input",
            "experiment_owner": "r1",
            "models": ["LogisticRegression"],
            "hyperparameters": {"LogisticRegression": {"C": [1], "solver": ["liblinear"]}},
            "scoring": "accuracy",
            "cv": 2,
        },
        ("POST", "/root/tracking/experiments"): {
            "experiment_id": experiment_id,
            "request_information": "statistics",
            "filter": ["all"],
        },
        ("POST", "/root/tracking/runs"): {
            "experiment_id": experiment_id,
            "run_id": run_id,
            "request_information": "parameters",
            "type": "data",
        },
        ("POST", "/root/monitoring"): {"metric": "summary", "tests": {"data_drift": True}},
    }


def documented_operations(url: str) -> list[tuple[str, str, dict]]:
    document = requests.get(url + "/openapi.json", timeout=10).json()
    return [
        (method.upper(), path, item) for path, methods in document["paths"].items() for method, item in methods.items()
    ]


MALFORMED_BODIES = [
    b"",
    b"{",
    b'{"set_name": ',
    b"{'single': 'quotes'}",
    b"[1, 2",
    b'{"a": 1}{"b": 2}',
    b"\xff\xfe\x00{",
    b"nul",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b"[" * 100_000 + b"]" * 100_000,
    b"[" * 900 + b"]" * 900,
    json.dumps({"deep": [[[[[[[[]]]]]]]] * 10}).encode(),
]
NOT_AN_OBJECT = ["a string", 1, 1.5, True, None, [], [1, "x"]]


def spoiled(body, replacements: list) -> list:
    """Copies of body with one leaf (or one dict key) replaced by each of the replacements."""
    variants = []

    def walk(node, path):
        if isinstance(node, dict):
            for key in list(node):
                walk(node[key], path + [key])
                for value in replacements:
                    if isinstance(value, str):  # a nasty key next to the good ones
                        variants.append(_with_key(body, path, key, value))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, path + [i])
        if path:
            for value in replacements:
                variants.append(_with_value(body, path, value))

    walk(body, [])
    return variants


def _with_value(body, path, value):
    copied = copy.deepcopy(body)
    node = copied
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copied


def _with_key(body, path, key, new_key):
    copied = copy.deepcopy(body)
    node = copied
    for step in path:
        node = node[step]
    node[new_key] = node.pop(key)
    return copied


def wrong_types_for(value) -> list:
    if isinstance(value, bool):
        return ["true", 1, None]
    if isinstance(value, int | float):
        return [str(value), [value], {"v": value}, True]
    if isinstance(value, str):
        return [123, 1.5, [value], {"v": value}, False, None]
    if isinstance(value, list):
        return ["x", {"0": 1}, 7]
    if isinstance(value, dict):
        return [[], "x", 7]
    return ["x"]


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_hand_written_bad_input_on_every_operation(service, stack, record_figures):
    url = stack["processes"][service].url
    bases = base_bodies(stack)
    findings = Findings()
    json_header = {"Content-Type": "application/json"}

    def send(label, method, path, **kwargs):
        response = requests.request(method, url + path, timeout=300, **kwargs)
        findings.add(f"{method} {path} {label}", kwargs.get("json", kwargs.get("data", kwargs.get("params"))), response)
        return response

    enums = enum_fields(requests.get(url + "/openapi.json", timeout=10).json())
    for method, path, item in documented_operations(url):
        if "requestBody" in item:
            for raw in MALFORMED_BODIES:
                answer = send("malformed JSON", method, path, data=raw, headers=json_header)
                assert answer.status_code == 400, f"{method} {path} {raw[:40]!r} -> {answer.status_code}"
            for headers, data in (
                ({"Content-Type": "text/plain"}, b'{"set_name": "testing"}'),
                ({"Content-Type": "application/x-www-form-urlencoded"}, b"set_name=testing"),
                ({"Content-Type": "application/xml"}, b"<set_name>testing</set_name>"),
                ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\nhi\r\n--x--\r\n"),
                ({}, b'{"set_name": "testing"}'),
            ):
                if not headers and path.startswith("/v2"):
                    continue  # the protocol's clients send tensors without a Content-Type: read as JSON
                answer = send("wrong content type", method, path, data=data, headers=headers)
                assert answer.status_code == 415, f"{method} {path} {headers} -> {answer.status_code}"
            for value in NOT_AN_OBJECT:
                answer = send("not the right JSON value", method, path, json=value)
                assert 400 <= answer.status_code < 500
            base = bases.get((method, path))
            if base is None:
                continue
            for variant in spoiled(base, pick(NASTY_SHORT, NASTY_STRINGS)):
                send("nasty string", method, path, json=variant)
            _send_wrong_types(send, method, path, base)
            _send_unknown_enum_values(send, method, path, base, enums)
        for parameter in item.get("parameters", []):
            for value in pick(NASTY_SHORT, NASTY_STRINGS) + ["-1", "0", "99999999999999999999999", "1.5", "true"]:
                send(f"nasty query {parameter['name']}", method, path, params={parameter["name"]: value})
            send("unknown query parameter", method, path, params={"no_such_parameter": "1"})

    assert not Path(CANARY).exists(), "a path-like string reached the file system"
    process = stack["processes"][service]
    assert process.process.poll() is None, f"{service} died"
    assert requests.get(url + "/health", timeout=10).status_code == 200
    record_figures(
        f"R1 hand-written {service}",
        requests_sent=findings.sent,
        statuses=dict(sorted(findings.statuses.items())),
        failures=len(findings.problems),
    )
    findings.assert_clean()


def _send_wrong_types(send, method, path, base):
    def leaves(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, where + [key])
        elif isinstance(node, list) and node and not isinstance(node[0], (dict, list)):
            yield where, node
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from leaves(value, where + [i])
        else:
            yield where, node

    for where, value in leaves(base, []):
        if not where:
            continue
        for wrong in wrong_types_for(value):
            send(f"wrong type at {'.'.join(map(str, where))}", method, path, json=_with_value(base, where, wrong))


def enum_fields(document: dict) -> dict[str, list]:
    """Every property in the document's schemas whose values are a closed list (enum or const)."""
    found: dict[str, list] = {}

    def closed_values(schema) -> list:
        if not isinstance(schema, dict):
            return []
        values = list(schema.get("enum", [])) + ([schema["const"]] if "const" in schema else [])
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                values += closed_values(option)
        return values + closed_values(schema.get("items"))

    def walk(node):
        if isinstance(node, dict):
            for name, schema in (node.get("properties") or {}).items():
                values = closed_values(schema)
                if values:
                    found.setdefault(name, [])
                    found[name] += [v for v in values if v not in found[name]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document.get("components", {}))
    return found


def _send_unknown_enum_values(send, method, path, base, enums):
    """Each field whose schema lists accepted values gets a value outside them: a 400 naming one."""
    if not isinstance(base, dict):
        return
    for key, value in base.items():
        if key not in enums:
            continue
        spoilt = "no_such_value"
        body = base | {key: [spoilt] if isinstance(value, list) else spoilt}
        answer = send(f"unknown value of {key}", method, path, json=body)
        assert answer.status_code == 400, f"{method} {path} {key}={spoilt} -> {answer.status_code}"
        message = answer.json()["message"]
        assert any(str(v) in message for v in enums[key] if isinstance(v, str)), (
            f"the 400 for an unknown {key} does not say which values are accepted: {message}"
        )


def test_the_walkthrough_still_passes_and_no_process_died(stack):
    """Last in this module: after everything above, the user's walkthrough works as on day one."""
    run_walkthrough(stack["processes"], experiment_name=f"after-fuzzing-{uuid.uuid4().hex[:6]}")
    now = {name: sorted(process_tree(p.process.pid)) for name, p in stack["processes"].items()}
    assert now == stack["trees"], "a service process or worker died (or was restarted) during the fuzzing"
