"""R4 concurrency: 8 clients mixing predictions, evaluations, reports and status calls while the
production set is reloaded over and over. No answer is a 5xx, and every evaluation and report is
computed on one consistent version of each set.

How consistency is checked: production is reloaded alternately with its default 36 rows and with
500 resampled rows (both deterministic), and the model does not change during the run, so each
version has one true accuracy, measured beforehand. Every evaluation must answer one of those
two scores; every report must say which version it used and carry that version's row count and
that version's accuracy; and a watcher reading the database in single statements must never see
a set whose samples or predictions are partly there.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import distinct, func, select

from mlops.kernel.db import datasets, make_engine, predictions, samples
from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.clients import Clients, Probe, describe, is_json_error
from tests.support.processes import ServiceProcess, settings_on_free_ports
from tests.support.reliability import ALL_SERVICES, LONG, pick
from tests.support.stack import MODEL, call, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

SECONDS = pick(12, 60)
CLIENTS = 8  # one of them reloads production
BACKENDS = pick(["postgresql"], ["sqlite", "postgresql"])
BIG = 500
RELOAD_PAUSE = 0.8
ROWS = [WINE_SAMPLE, {**WINE_SAMPLE, "proline": 400.0, "flavanoids": 0.5}, {**WINE_SAMPLE, "alcohol": None}]


@pytest.fixture(params=BACKENDS)
def stack(request, tmp_path, postgres_database):
    """Every landed service on one backend, a model trained, testing evaluated."""
    databases = (
        {"dataset_db_url": postgres_database(), "mlflow_tracking_uri": postgres_database()}
        if request.param == "postgresql"
        else {}
    )
    settings = settings_on_free_ports(data_dir=tmp_path, **databases)
    processes = {s: ServiceProcess(s, settings, tmp_path / f"{s}.log") for s in ALL_SERVICES}
    try:
        start_stack(lambda service, _settings: processes[service].start(), settings, list(processes))
        yield {"processes": processes, "settings": settings, "backend": request.param}
    finally:
        stop_stack(processes.values())


def score(answer_body: dict) -> str:
    """The percentage in "Score on <set> set: 94.44%"."""
    return answer_body["message"].rsplit(": ", 1)[1]


def report_facts(body: dict) -> tuple[int, int, float | None, int | None]:
    """From a report: the current set's version and declared rows, Evidently's current accuracy and rows."""
    current = body["datasets"]["current"]
    accuracy = rows = None
    for metric in body["data"]["metrics"]:
        result = metric.get("result", {})
        if metric["metric"] == "ClassificationQualityMetric":
            accuracy = result["current"]["accuracy"]
        if metric["metric"] == "DatasetSummaryMetric":
            rows = result["current"]["number_of_rows"]
    return current["dataset_id"], current["rows"], accuracy, rows


class SetWatcher:
    """Reads the production set's counts in single statements, over and over, noting anything partial."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.snapshots = 0
        self.inconsistent: list[tuple] = []
        self.versions: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(30)
        self.engine.dispose()

    def _run(self):
        d = datasets.alias("d")

        def count(table, expression=None):
            what = func.count() if expression is None else func.count(distinct(expression))
            return select(what).where(table.c.dataset_id == d.c.id).scalar_subquery()

        query = select(
            d.c.id,
            d.c.n_samples,
            count(samples),
            count(predictions),
            count(predictions, predictions.c.model_version),
        ).where(d.c.name == "production")
        while not self._stop.is_set():
            try:
                with self.engine.connect() as connection:
                    row = connection.execute(query).first()
            except Exception as error:  # e.g. SQLite busy: a missed snapshot, not an inconsistency
                self.inconsistent.append(("read failed", repr(error)[:200]))
                time.sleep(0.05)
                continue
            self.snapshots += 1
            if row is not None:
                dataset_id, n, n_samples, n_predictions, model_versions = row
                self.versions[dataset_id] = n
                if not (n_samples == n and n_predictions in (0, n) and model_versions <= 1):
                    self.inconsistent.append(tuple(row))
            time.sleep(0.03)


def test_mixed_clients_while_production_is_reloaded_see_one_version_at_a_time(stack, record_figures):
    processes, backend = stack["processes"], stack["backend"]
    simulator, ml = processes["simulator"].url, processes["ml"].url
    monitoring = processes["monitoring"].url if "monitoring" in processes else None
    for set_name in ("training", "testing", "production"):
        call("POST", simulator + "/root/simulator", json={"set_name": set_name})
    call("POST", ml + "/root/ml/set_model", json=MODEL)
    call("POST", ml + "/root/ml", json={"dataset": "training"})
    testing_score = score(call("POST", ml + "/root/ml", json={"dataset": "testing"}))
    predicted = call("POST", ml + "/root/ml/predict", json=ROWS)

    # the true score (and report accuracy) of each production version, one at a time
    truth: dict[int, dict] = {}
    for body, n in (({"set_name": "production", "size": BIG}, BIG), ({"set_name": "production"}, 36)):
        call("POST", simulator + "/root/simulator", json=body)
        truth[n] = {"score": score(call("POST", ml + "/root/ml", json={"dataset": "production"}))}
        if monitoring:
            _, rows, accuracy, _ = report_facts(
                call("POST", monitoring + "/root/monitoring", json={"metric": "report"})
            )
            assert rows == n
            truth[n]["accuracy"] = accuracy
    assert truth[36]["score"] != truth[BIG]["score"], "the two versions must be told apart by their score"

    reload_lane = [
        Probe("reload production big", "POST", simulator + "/root/simulator", {"set_name": "production", "size": BIG}),
        Probe("reload production", "POST", simulator + "/root/simulator", {"set_name": "production"}),
    ]
    mixed = [
        Probe("predict", "POST", ml + "/root/ml/predict", ROWS),
        Probe("evaluate production", "POST", ml + "/root/ml", {"dataset": "production"}),
        Probe("ml status", "GET", ml + "/root/ml"),
        Probe("evaluate testing", "POST", ml + "/root/ml", {"dataset": "testing"}),
        Probe("simulator status", "GET", simulator + "/root/simulator"),
    ]
    if "tracking" in processes:
        mixed += [Probe("experiments", "GET", processes["tracking"].url + "/root/tracking/experiments")]
    reports = []
    if monitoring:
        # A report takes seconds where a prediction takes milliseconds: two clients ask for
        # reports (mixed with status calls), so that the other five are not all stuck waiting.
        reports = [
            Probe("report", "POST", monitoring + "/root/monitoring", {"metric": "report"}),
            Probe("summary", "POST", monitoring + "/root/monitoring", {"metric": "summary"}),
            Probe("monitoring status", "GET", monitoring + "/root/monitoring"),
            Probe("ml status", "GET", ml + "/root/ml"),
        ]
    lanes = [reload_lane] + [reports] * 2 + [mixed] * (CLIENTS - 3)
    # a reload every ~second: often enough to race with everything, seldom enough for reports
    # (which need both sets evaluated) to get through between two reloads
    pauses = [RELOAD_PAUSE] + [0.05] * (CLIENTS - 1)
    with SetWatcher(stack["settings"].dataset_db) as watcher:
        with Clients(lanes, timeout=300, pauses=pauses) as clients:
            time.sleep(SECONDS)
            answers = clients.stop()

    by_kind = Counter(a.probe.name for a in answers)
    server_errors = [describe(a) for a in answers if a.status is None or a.status >= 500]
    other_4xx = [
        describe(a) for a in answers if a.status is not None and 400 <= a.status < 500 and not is_json_error(a, 409)
    ]
    wrong_scores, wrong_reports, wrong_predictions = [], [], []
    for a in answers:
        if not a.ok:
            continue
        if a.probe.name == "evaluate production" and score(a.body) not in (truth[36]["score"], truth[BIG]["score"]):
            wrong_scores.append(describe(a))
        elif a.probe.name == "evaluate testing" and score(a.body) != testing_score:
            wrong_scores.append(describe(a))
        elif a.probe.name == "report":
            dataset_id, rows, accuracy, evidently_rows = report_facts(a.body)
            known = watcher.versions.get(dataset_id)
            if (
                rows not in truth
                or evidently_rows != rows
                or accuracy != truth[rows]["accuracy"]
                or (known is not None and known != rows)
            ):
                wrong_reports.append(
                    f"version {dataset_id} ({known} rows): report says {rows} rows, Evidently "
                    f"counted {evidently_rows}, accuracy {accuracy} (true: {truth.get(rows)})"
                )
        elif a.probe.name == "predict" and a.body != predicted:
            wrong_predictions.append(describe(a))

    record_figures(
        "R4 concurrency",
        backend=backend,
        clients=CLIENTS,
        seconds=SECONDS,
        requests_sent=len(answers),
        by_kind=dict(sorted(by_kind.items())),
        reloads=by_kind["reload production"] + by_kind["reload production big"],
        answered_409=sum(a.status == 409 for a in answers),
        answered_5xx_or_none=len(server_errors),
        evaluations_checked=sum(a.ok and a.probe.name.startswith("evaluate") for a in answers),
        reports_checked=sum(a.ok and a.probe.name == "report" for a in answers),
        db_snapshots_checked=watcher.snapshots,
        inconsistencies=len(wrong_scores) + len(wrong_reports) + len(wrong_predictions) + len(watcher.inconsistent),
    )
    assert not server_errors, f"{len(server_errors)} answers were 5xx or none: {server_errors[:8]}"
    assert not other_4xx, f"4xx other than a 409 JSON: {other_4xx[:8]}"
    assert not wrong_scores, f"evaluations not computed on one version: {wrong_scores[:8]}"
    assert not wrong_reports, f"reports not computed on one version: {wrong_reports[:8]}"
    assert not wrong_predictions, wrong_predictions[:5]
    assert not watcher.inconsistent, f"partial sets seen: {watcher.inconsistent[:8]}"
    assert sum(a.ok and a.probe.name == "evaluate production" for a in answers) > 0
    if LONG:
        assert by_kind["reload production"] > 5


def test_concurrent_reloads_of_one_set_all_succeed_and_leave_it_whole(stack, record_figures):
    """Two people pressing "load production" at the same moment both get their answer."""
    simulator = stack["processes"]["simulator"].url
    statuses: Counter = Counter()
    bodies = []
    for _ in range(pick(3, 10)):
        barrier = threading.Barrier(4)

        def load(barrier=barrier):
            barrier.wait()
            answer = requests.post(simulator + "/root/simulator", json={"set_name": "production"}, timeout=120)
            statuses[answer.status_code] += 1
            bodies.append(answer.text[:200])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    engine = make_engine(stack["settings"].dataset_db)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(datasets.c.id, datasets.c.n_samples).where(datasets.c.name == "production")
            ).all()
            assert len(rows) == 1
            n = connection.execute(select(func.count()).where(samples.c.dataset_id == rows[0].id)).scalar_one()
            assert n == rows[0].n_samples == 36
    finally:
        engine.dispose()
    record_figures("R4 concurrent reloads", backend=stack["backend"], statuses=dict(statuses))
    assert set(statuses) == {200}, (
        f"concurrent reloads answered {dict(statuses)}: {[b for b in bodies if 'Load' not in b][:3]}"
    )


def test_concurrent_evaluations_of_an_unchanged_set_all_succeed(stack, record_figures):
    """Nobody reloads testing here: every evaluation of it must succeed with the same score."""
    processes = stack["processes"]
    simulator, ml = processes["simulator"].url, processes["ml"].url
    for set_name in ("training", "testing"):
        call("POST", simulator + "/root/simulator", json={"set_name": set_name})
    call("POST", ml + "/root/ml/set_model", json=MODEL)
    call("POST", ml + "/root/ml", json={"dataset": "training"})
    expected = call("POST", ml + "/root/ml", json={"dataset": "testing"})
    statuses: Counter = Counter()
    odd = []
    lock = threading.Lock()

    def evaluate():
        for _ in range(pick(10, 40)):
            answer = requests.post(ml + "/root/ml", json={"dataset": "testing"}, timeout=120)
            with lock:
                statuses[answer.status_code] += 1
                if answer.status_code != 200 or answer.json() != expected:
                    odd.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=evaluate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record_figures("R4 concurrent evaluations", backend=stack["backend"], statuses=dict(statuses))
    assert not odd, f"{len(odd)} of {sum(statuses.values())} evaluations failed: {odd[:5]}"
