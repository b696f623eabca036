"""R5 limits and auth, through real processes: where the services listen, the request body cap,
the optional API token (mutations, then reads too), and that nothing is unpickled from the
network or the database."""

from __future__ import annotations

import os
import time

import pytest
import requests

from mlops.kernel.config import Settings
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.ml.pipeline_cache import VERSION_CHECK_SECONDS
from tests.support.processes import settings_on_free_ports
from tests.support.reliability import ALL_SERVICES, assert_json_error, listening_addresses
from tests.support.stack import MODEL, call

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

TOKEN = "r5-s3cret-token"
MUTATING = ("post", "put", "patch", "delete")


def settings_for(tmp_path, **overrides) -> Settings:
    """Settings with free ports for every service and a SQLite dataset DB in tmp_path."""
    return settings_on_free_ports(
        data_dir=tmp_path,
        **overrides,
    )


def operations(base_url: str, headers: dict | None = None) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the service's OpenAPI document."""
    document = requests.get(base_url + "/openapi.json", headers=headers, timeout=10).json()
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


def url_of(base_url: str, path: str) -> str:
    # no operation has path parameters today; fill any with a harmless value
    return base_url + path.replace("{", "").replace("}", "")


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_service_listens_on_loopback_only_by_default(service, tmp_path, start_service):
    settings = settings_for(tmp_path)
    assert Settings.from_env({}).host == "127.0.0.1"
    process = start_service(service, settings)
    assert listening_addresses(process.process.pid) == {("127.0.0.1", settings.port_of(service))}


def test_service_listens_where_told(tmp_path, start_service):
    settings = settings_for(tmp_path, host="0.0.0.0")
    process = start_service("simulator", settings)
    assert listening_addresses(process.process.pid) == {("0.0.0.0", settings.simulator_port)}


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_bodies_over_the_cap_are_413_json_on_every_operation(service, tmp_path, start_service):
    cap = 4096
    process = start_service(service, settings_for(tmp_path, max_body_bytes=cap))
    # a pushed trained pipeline has its own, larger cap (MAX_MODEL_BYTES): tracking sends whole models there
    with_body = [
        (m, p) for m, p in operations(process.url) if m.lower() in ("post", "put", "patch") and p != "/root/ml/model"
    ]
    assert with_body, f"{service} has no operation that takes a body"
    just_under = '{"padding": "' + "x" * (cap - 100) + '"}'
    over = '{"padding": "' + "x" * (cap + 1) + '"}'
    for method, path in with_body:
        url = url_of(process.url, path)
        headers = {"Content-Type": "application/json"}
        # under the cap the body is read and judged on its content (an unknown field)
        assert requests.request(method, url, data=just_under, headers=headers, timeout=30).status_code != 413
        body = assert_json_error(requests.request(method, url, data=over, headers=headers, timeout=30), 413)
        assert "large" in " ".join(body.values()).lower()
        # a chunked body announces no length: it is cut off while being read
        chunks = (over[i : i + 1000].encode() for i in range(0, len(over), 1000))
        assert_json_error(requests.request(method, url, data=chunks, headers=headers, timeout=30), 413)
    assert requests.get(process.url + "/health", timeout=10).status_code == 200


def test_a_huge_body_is_refused_without_being_read(tmp_path, start_service):
    process = start_service("simulator", settings_for(tmp_path))  # default cap: 2 MB
    huge = b'{"set_name": "' + b"x" * 64_000_000 + b'"}'
    try:
        response = requests.post(
            process.url + "/root/simulator", data=huge, headers={"Content-Type": "application/json"}, timeout=30
        )
    except requests.ConnectionError:
        # The server may answer 413 and close before the client has sent everything; what
        # matters is that it did not read 64 MB and is still there.
        response = None
    if response is not None:
        assert_json_error(response, 413)
    assert requests.get(process.url + "/health", timeout=10).status_code == 200
    assert process.process.poll() is None


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_api_token_guards_mutations_and_leaves_reads_open(service, tmp_path, start_service):
    process = start_service(service, settings_for(tmp_path, api_token=TOKEN))
    good = {"Authorization": f"Bearer {TOKEN}"}
    wrong_headers = [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ]
    all_operations = operations(process.url)
    for method, path in all_operations:
        url = url_of(process.url, path)
        if method.lower() in MUTATING:
            for headers in wrong_headers:
                answer = requests.request(method, url, json={}, headers=headers, timeout=30)
                assert_json_error(answer, 401)
            # with the token the request gets past the door and is judged on its body
            assert requests.request(method, url, json={"no_such_field": 1}, headers=good, timeout=30).status_code != 401
        else:
            assert requests.request(method, url, timeout=60).status_code != 401
    assert requests.get(process.url + "/health", timeout=10).status_code == 200
    assert requests.get(process.url + "/openapi.json", timeout=10).status_code == 200


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_protect_reads_closes_reads_too_but_not_health(service, tmp_path, start_service):
    process = start_service(service, settings_for(tmp_path, api_token=TOKEN, protect_reads=True))
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert_json_error(requests.get(process.url + "/openapi.json", timeout=10), 401)
    for method, path in operations(process.url, headers=good):
        url = url_of(process.url, path)
        if path.startswith("/v2/health/"):
            # the protocol's liveness and readiness probes stay open, as /health and /ready do
            assert requests.request(method, url, timeout=30).status_code != 401
            continue
        assert_json_error(requests.request(method, url, timeout=30), 401)
        if method == "GET":
            assert requests.get(url, headers=good, timeout=60).status_code != 401
    health = requests.get(process.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_grid_size_and_cv_caps_refuse_before_anything_is_logged(tmp_path, start_service):
    settings = settings_for(tmp_path, grid_max_fits=20)
    simulator = start_service("simulator", settings)
    tracking = start_service("tracking", settings)
    call("POST", simulator.url + "/root/simulator", json={"set_name": "training"})
    url = tracking.url + "/root/tracking/model_management"
    too_big = requests.post(url, json=WALKTHROUGH_OPTIMIZATION | {"experiment_name": "r5-caps"}, timeout=120)
    body = assert_json_error(too_big, 400)
    assert "20" in body["message"] and "MLOPS_GRID_MAX_FITS" in body["message"]
    small = {
        **WALKTHROUGH_OPTIMIZATION,
        "experiment_name": "r5-caps",
        "models": ["LogisticRegression"],
        "hyperparameters": {"LogisticRegression": {"C": [1], "solver": ["liblinear"]}},
    }
    for cv in (1, 0, -3, 29, 500, 10_000):  # the training set's smallest class has 28 samples
        assert_json_error(requests.post(url, json=small | {"cv": cv}, timeout=120), 400)
    # nothing was logged, so nothing was left RUNNING either
    experiments = call("GET", tracking.url + "/root/tracking/experiments")["data"]
    assert all(e["run_count"] == 0 for e in experiments if e["name"] == "r5-caps"), experiments
    assert call("POST", url, json=small | {"cv": 3}, expect=201)["data"]["run_ids"]


def test_service_to_service_calls_carry_the_token(tmp_path, start_service):
    settings = settings_for(tmp_path, api_token=TOKEN)
    good = {"Authorization": f"Bearer {TOKEN}"}
    simulator = start_service("simulator", settings)
    ml = start_service("ml", settings)
    tracking = start_service("tracking", settings)
    call("POST", simulator.url + "/root/simulator", json={"set_name": "training"}, headers=good)
    body = WALKTHROUGH_OPTIMIZATION | {
        "experiment_name": "r5-token",
        "models": ["RandomForest"],
        "hyperparameters": {"RandomForest": {"n_estimators": [3]}},
        "cv": 3,
    }
    run_id = call("POST", tracking.url + "/root/tracking/model_management", json=body, headers=good, expect=201)[
        "data"
    ]["run_ids"]["RandomForest"]
    setting = {"request_information": "setting", "run_id": run_id}
    assert_json_error(requests.post(tracking.url + "/root/tracking/model_management", json=setting, timeout=60), 401)
    # tracking -> ML service: the deploy goes through only because tracking sends the token on
    assert call("POST", tracking.url + "/root/tracking/model_management", json=setting, headers=good) == {
        "message": "Model successfully uploaded"
    }
    assert call("GET", ml.url + "/root/ml")["model"]["model_name"] == "RandomForest"


def test_the_model_is_stored_with_skops_and_untrusted_content_is_never_loaded(tmp_path, start_service):
    import pickle

    import skops.io
    from sqlalchemy import select, update

    from mlops.kernel.catalogue import TRUSTED_TYPES
    from mlops.kernel.db import deployed_model, make_engine

    settings = settings_for(tmp_path)
    simulator = start_service("simulator", settings)
    ml = start_service("ml", settings)
    call("POST", simulator.url + "/root/simulator", json={"set_name": "training"})
    call("POST", ml.url + "/root/ml/set_model", json=MODEL)
    call("POST", ml.url + "/root/ml", json={"dataset": "training"})
    engine = make_engine(settings.dataset_db)
    try:
        with engine.connect() as connection:
            stored = connection.execute(select(deployed_model.c.pipeline)).scalar_one()
        # a skops archive (a zip, not a pickle) naming only types the catalogue trusts explicitly
        assert stored[:2] == b"PK"
        assert set(skops.io.get_untrusted_types(data=stored)) <= set(TRUSTED_TYPES)
        canary = tmp_path / "pwned"

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {canary}",))

        for payload in (pickle.dumps(Exploit()), skops.io.dumps({"run": os.system}), b"garbage"):
            with engine.begin() as connection:
                connection.execute(
                    update(deployed_model).values(pipeline=payload, version=deployed_model.c.version + 1)
                )
            time.sleep(VERSION_CHECK_SECONDS)  # written behind the service's back: seen within this
            answer = requests.post(ml.url + "/root/ml/predict", json=[WINE_SAMPLE], timeout=60)
            assert_json_error(answer, 409)
            assert not canary.exists(), "the stored model was unpickled"
    finally:
        engine.dispose()
    # training again replaces the unusable model
    call("POST", ml.url + "/root/ml", json={"dataset": "training"})
    assert call("POST", ml.url + "/root/ml/predict", json=[WINE_SAMPLE])["predictions"]
