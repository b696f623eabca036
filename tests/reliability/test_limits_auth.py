"""R5 limits and auth, through real processes: where the services listen, the request body cap,
the optional API token (mutations, then reads too), and that nothing is unpickled from the
network or the database."""

from __future__ import annotations

import pytest
import requests

from mlops.kernel.config import Settings
from tests.processes import free_port
from tests.reliability.conftest import ALL_SERVICES, assert_json_error, listening_addresses, require_services

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

TOKEN = "r5-s3cret-token"
MUTATING = ("post", "put", "patch", "delete")


def settings_for(tmp_path, **overrides) -> Settings:
    """Settings with free ports for every service and a SQLite dataset DB in tmp_path."""
    return Settings(
        data_dir=tmp_path,
        simulator_port=free_port(),
        ml_port=free_port(),
        tracking_port=free_port(),
        monitoring_port=free_port(),
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
    require_services(service)
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
    require_services(service)
    cap = 4096
    process = start_service(service, settings_for(tmp_path, max_body_bytes=cap))
    with_body = [(m, p) for m, p in operations(process.url) if m.lower() in ("post", "put", "patch")]
    assert with_body, f"{service} has no operation that takes a body"
    just_under = '{"padding": "' + "x" * (cap - 100) + '"}'
    over = '{"padding": "' + "x" * (cap + 1) + '"}'
    for method, path in with_body:
        url = url_of(process.url, path)
        headers = {"Content-Type": "application/json"}
        # under the cap the body is read and judged on its content (an unknown field)
        assert requests.request(method, url, data=just_under, headers=headers, timeout=30).status_code != 413
        body = assert_json_error(requests.request(method, url, data=over, headers=headers, timeout=30), 413)
        assert "large" in (body["error"] + body["message"]).lower()
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
    require_services(service)
    process = start_service(service, settings_for(tmp_path, api_token=TOKEN))
    good = {"Authorization": f"Bearer {TOKEN}"}
    wrong_headers = [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {TOKEN}"},
                     {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}]
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
    require_services(service)
    process = start_service(service, settings_for(tmp_path, api_token=TOKEN, protect_reads=True))
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert_json_error(requests.get(process.url + "/openapi.json", timeout=10), 401)
    for method, path in operations(process.url, headers=good):
        url = url_of(process.url, path)
        assert_json_error(requests.request(method, url, timeout=30), 401)
        if method == "GET":
            assert requests.get(url, headers=good, timeout=60).status_code != 401
    health = requests.get(process.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"

