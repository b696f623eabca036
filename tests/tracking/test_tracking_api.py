"""The tracking service's HTTP API through Flask's test client, with real MLflow stores and
dataset databases on SQLite and on PostgreSQL."""

from __future__ import annotations

import re

import pytest

from mlops.kernel.web.state import state_of
from mlops.tracking.mlflow import reads, writes
from tests.support.sets import load_sets
from tests.support.tracking import WALKTHROUGH_LR_ACCURACY, optimization

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
MODELS = ("LogisticRegression", "RandomForest", "SVC")


def experiments(client, **body):
    return client.post("/root/tracking/experiments", json=body)


def runs(client, **body):
    return client.post("/root/tracking/runs", json=body)


def optimize(client, body):
    return client.post("/root/tracking/model_management", json=body)


def experiment_named(backend, name):
    """The experiment logged under name, or None."""
    return next((e for e in reads.list_experiments(backend) if e.name == name), None)


def assert_error(response, status, error=None):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"error", "message"}
    if error is not None:
        assert body["error"] == error
    return body


# --- the walkthrough, read-only queries on one optimization per backend ----------------------


def test_optimization_answers_the_experiment_and_one_run_per_model(walkthrough):
    client, data, name = walkthrough
    assert data["experiment_id"].isdigit()
    assert list(data["run_ids"]) == list(MODELS)
    listed = client.get("/root/tracking/experiments").get_json()
    assert listed["message"] == "Experiments retrieved successfully"
    [entry] = [e for e in listed["data"] if e["name"] == name]
    assert entry == {"experiment_id": data["experiment_id"], "name": name, "lifecycle_stage": "active", "run_count": 3}


def test_runs_are_listed_newest_first_with_walkthrough_names_and_tags(walkthrough):
    client, data, _ = walkthrough
    response = client.get(f"/root/tracking/runs?experiment_id={data['experiment_id']}")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["message"] == "Experiment Runs Retrieved"
    assert [r["run_id"] for r in answer["data"]] == [data["run_ids"][m] for m in reversed(MODELS)]
    for listed, model in zip(answer["data"], reversed(MODELS), strict=True):
        assert listed["status"] == "FINISHED"
        assert listed["run_name"] == f"{model} Grid_Search_Opt and CV_Performance"
        assert listed["tags"] == {"model_type": model, "experiment_type": "GridSearch_CrossValidation"}
        assert TIME.match(listed["start_time"]) and TIME.match(listed["end_time"])
        assert listed["start_time"] <= listed["end_time"]


def test_general_information(walkthrough):
    client, data, name = walkthrough
    response = experiments(client, experiment_id=data["experiment_id"], request_information="general")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["message"] == "Information Retrieved"
    info, counts = answer["data"]["experiment_info"], answer["data"]["experiment_runs"]
    assert info["experiment_id"] == data["experiment_id"] and info["experiment_name"] == name
    assert info["artifact_location"].endswith(f"/{data['experiment_id']}")
    assert info["lifecycle_stage"] == "active"
    assert info["tags"] == {"description": "Grid Search Optimization - Cross Validation Performance", "owner": "Ale"}
    assert TIME.match(info["data_creation"]) and TIME.match(info["last_updated"])
    assert {
        k: counts[k] for k in ("number_of_runs", "completed_runs", "failed_runs", "active_runs", "stopped_runs")
    } == {
        "number_of_runs": 3,
        "completed_runs": 3,
        "failed_runs": 0,
        "active_runs": 0,
        "stopped_runs": 0,
    }
    assert counts["first_run_completed"] <= counts["last_run_completed"]


def test_best_model_is_the_logistic_regression(walkthrough):
    client, data, _ = walkthrough
    response = experiments(
        client, experiment_id=data["experiment_id"], request_information="best_model", filter=["model_accuracy"]
    )
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["message"] == "Best model and run retrieved successfully."
    assert answer["data"] == {
        "run_id": data["run_ids"]["LogisticRegression"],
        "run_name": "LogisticRegression Grid_Search_Opt and CV_Performance",
        "model": "LogisticRegression",
        "metrics": {"model_accuracy": pytest.approx(WALKTHROUGH_LR_ACCURACY)},
    }


def test_statistics_describe_the_runs_metrics(walkthrough):
    client, data, _ = walkthrough
    response = experiments(
        client, experiment_id=data["experiment_id"], request_information="statistics", filter=["all"]
    )
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["message"] == "Statistics Retrieved"
    assert list(answer["data"]) == ["duration", "accuracy", "f1_score", "precision", "recall"]
    accuracies = [
        runs(
            client,
            experiment_id=data["experiment_id"],
            run_id=data["run_ids"][m],
            request_information="metrics",
            type="model",
        ).get_json()["data"]["accuracy"]
        for m in MODELS
    ]
    accuracy = answer["data"]["accuracy"]
    assert accuracy["mean"] == pytest.approx(sum(accuracies) / 3)
    assert (accuracy["min"], accuracy["max"]) == (min(accuracies), max(accuracies))
    assert answer["data"]["recall"] == accuracy
    omitted = experiments(client, experiment_id=data["experiment_id"], request_information="statistics").get_json()
    assert omitted == answer
    only = experiments(
        client, experiment_id=data["experiment_id"], request_information="statistics", filter=["accuracy"]
    )
    assert only.get_json()["data"] == {"accuracy": accuracy}


def test_run_parameters_and_metrics_without_prefixes(walkthrough):
    client, data, _ = walkthrough
    ids = {"experiment_id": data["experiment_id"], "run_id": data["run_ids"]["LogisticRegression"]}

    def ask(information, kind):
        response = runs(client, **ids, request_information=information, type=kind)
        assert response.status_code == 200
        assert response.get_json()["message"] == "Parameters Retrieved"
        return response.get_json()["data"]

    assert ask("parameters", "data") == {"classes": "3", "features": "13", "samples": "106"}
    assert ask("parameters", "grid_search") == {
        "C": "[0.1, 1]",
        "cv_folds": "5",
        "scoring": "accuracy",
        "solver": "['liblinear']",
    }
    assert ask("parameters", "model") == {"C": "0.1", "solver": "liblinear"}
    system = ask("metrics", "system")
    assert list(system) == ["cpu_usage", "execution_time"]
    assert 0 <= system["cpu_usage"] <= 100 and system["execution_time"] > 0
    model = ask("metrics", "model")
    assert list(model) == ["accuracy", "f1_score", "precision", "recall"]
    assert model["accuracy"] == pytest.approx(WALKTHROUGH_LR_ACCURACY)
    forest = runs(
        client,
        experiment_id=data["experiment_id"],
        run_id=data["run_ids"]["RandomForest"],
        request_information="parameters",
        type="grid_search",
    ).get_json()["data"]
    assert forest["max_depth"] == "[None, 3]" and forest["n_estimators"] == "[1, 3]"


def test_an_int_experiment_id_is_accepted_like_the_string(walkthrough):
    client, data, _ = walkthrough
    as_text = experiments(client, experiment_id=data["experiment_id"], request_information="general").get_json()
    as_int = experiments(client, experiment_id=int(data["experiment_id"]), request_information="general").get_json()
    assert as_int == as_text


def test_best_models_are_logged_loadable_and_registered(walkthrough, tmp_path):
    """Each run's model is stored with skops (trusted types named), registered under its name."""
    import mlflow.sklearn
    from mlflow import MlflowClient

    from mlops.simulator.splits import load_split

    client, data, _ = walkthrough
    backend = state_of(client.application).resources.mlflow
    mlflow_client = MlflowClient(tracking_uri=backend.tracking_uri, registry_uri=backend.tracking_uri)
    testing = load_split("testing")
    for model, run_id in data["run_ids"].items():
        [version] = mlflow_client.search_model_versions(f"name='{model}' and run_id='{run_id}'")
        assert version.status == "READY"
        (tmp_path / model).mkdir()
        loaded = mlflow.sklearn.load_model(version.source, dst_path=str(tmp_path / model))
        assert (loaded.predict(testing.features) == testing.target).mean() > 0.8
        assert mlflow_client.get_run(run_id).outputs.model_outputs  # the run lists its model


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"request_information": "general"}, "experiment_id"),
        ({"experiment_id": "1", "request_information": "everything"}, "'general', 'best_model', 'statistics'"),
        ({"experiment_id": "1"}, "request_information"),
        ({"experiment_id": "1", "request_information": "best_model"}, "filter"),
        ({"experiment_id": "1", "request_information": "best_model", "filter": []}, "filter"),
        ({"experiment_id": "1", "request_information": "best_model", "filter": ["accuracy"]}, "model_accuracy"),
        ({"experiment_id": "1", "request_information": "statistics", "filter": ["speed"]}, "duration"),
        ({"experiment_id": True, "request_information": "general"}, "experiment_id"),
        ({"experiment_id": "1", "request_information": "general", "extra": 1}, "extra"),
    ],
)
def test_bad_experiment_queries_are_400_naming_the_problem(walkthrough, body, says):
    client, _, _ = walkthrough
    answer = assert_error(experiments(client, **body), 400)
    assert says in answer["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"request_information": "parameters", "type": "hyper"}, "'data', 'grid_search' or 'model'"),
        ({"request_information": "metrics", "type": "data"}, "'system' or 'model'"),
        ({"request_information": "artifacts", "type": "data"}, "'parameters', 'metrics'"),
        ({"request_information": "metrics"}, "type"),
    ],
)
def test_bad_run_queries_are_400_listing_accepted_values(walkthrough, body, says):
    client, data, _ = walkthrough
    ids = {"experiment_id": data["experiment_id"], "run_id": data["run_ids"]["SVC"]}
    answer = assert_error(runs(client, **ids, **body), 400)
    assert says in answer["message"]


def test_unknown_experiments_and_runs_are_404(walkthrough):
    client, data, _ = walkthrough
    lr = data["run_ids"]["LogisticRegression"]
    for experiment_id in ("999999", "abc", "0x1"):
        assert_error(experiments(client, experiment_id=experiment_id, request_information="general"), 404)
        assert_error(client.get(f"/root/tracking/runs?experiment_id={experiment_id}"), 404)
    assert_error(
        runs(client, experiment_id=data["experiment_id"], run_id="f" * 32, request_information="metrics", type="model"),
        404,
        "Run not found",
    )
    assert_error(
        runs(
            client, experiment_id=data["experiment_id"], run_id="not a run", request_information="metrics", type="model"
        ),
        404,
        "Run not found",
    )
    assert_error(client.get("/root/tracking/runs"), 400)
    # The MLflow "Default" experiment exists but is not ours; the run is not in it.
    assert_error(runs(client, experiment_id="0", run_id=lr, request_information="metrics", type="model"), 404)


def test_openapi_describes_the_tracking_endpoints(walkthrough):
    client, _, _ = walkthrough
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/root/tracking/experiments"]) == {"get", "post", "delete"}
    assert set(paths["/root/tracking/runs"]) == {"get", "post", "delete"}
    assert "post" in paths["/root/tracking/model_management"]
    assert "OptimizationRequest" in document["components"]["schemas"]


# --- optimizations and deletions of their own -------------------------------------------------


def test_optimization_before_the_training_set_is_loaded_is_409_and_logs_nothing(client, backend):
    body = optimization()
    answer = assert_error(optimize(client, body), 409, "Set not loaded")
    assert "POST /root/simulator" in answer["message"]
    assert experiment_named(backend, body["experiment_name"]) is None


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"hyperparameters": {"SVC": {"kernal": ["rbf"]}}}, 400, "Invalid hyperparameter"),
        ({"models": ["LogisticRegression", "KNN"]}, 400, "Invalid request"),
        ({"cv": 1}, 400, "Invalid request"),
        ({"cv": 40}, 400, "Invalid cv"),
        ({"scoring": "accurate"}, 400, "Invalid scoring"),
        ({"scoring": "precision"}, 400, "Invalid scoring"),
        ({"cv": "5"}, 400, "Invalid request"),
        ({"hyperparameters": {"SVC": {"C": 1}}}, 400, "Invalid request"),
        ({"experiment_name": ""}, 400, "Invalid request"),
    ],
)
def test_invalid_optimizations_are_refused_and_log_nothing(client, backend, training_loaded, changes, status, error):
    body = optimization(**changes)
    assert_error(optimize(client, body), status, error)
    assert experiment_named(backend, body["experiment_name"]) is None


def test_an_oversized_grid_is_refused_naming_the_limit_and_logs_nothing(tracking_settings, backend):
    from mlops.tracking.app import create_app

    app = create_app(tracking_settings.model_copy(update={"grid_max_fits": 50}))
    body = optimization()
    answer = assert_error(optimize(app.test_client(), body), 400, "Grid too large")
    assert "90 fits" in answer["message"] and "50" in answer["message"] and "MLOPS_GRID_MAX_FITS" in answer["message"]
    assert experiment_named(backend, body["experiment_name"]) is None
    state_of(app).dispose()


def test_a_model_whose_fits_all_fail_ends_its_run_failed_and_leaves_nothing_running(client, backend, training_loaded):
    body = optimization(
        models=["LogisticRegression", "RandomForest", "SVC"],
        hyperparameters={
            "LogisticRegression": {"C": [1.0]},
            "RandomForest": {"bootstrap": [False], "max_samples": [0.5]},  # every fit fails
        },
        cv=3,
    )
    answer = assert_error(optimize(client, body), 400, "Grid search failed")
    assert "RandomForest" in answer["message"] and "max_sample" in answer["message"]
    experiment = experiment_named(backend, body["experiment_name"])
    logged = reads.list_runs(backend, [experiment.experiment_id])
    by_model = {run.tags["model_type"]: run for run in logged}
    assert set(by_model) == {"LogisticRegression", "RandomForest"}  # it stopped at the failure
    assert by_model["LogisticRegression"].status == "FINISHED"
    assert by_model["RandomForest"].status == "FAILED"
    assert "max_sample" in by_model["RandomForest"].tags["error"]
    assert by_model["RandomForest"].run_id in answer["message"]
    assert by_model["LogisticRegression"].run_id in answer["message"]
    general = experiments(client, experiment_id=experiment.experiment_id, request_information="general").get_json()
    assert general["data"]["experiment_runs"]["failed_runs"] == 1
    assert general["data"]["experiment_runs"]["active_runs"] == 0
    best = experiments(
        client, experiment_id=experiment.experiment_id, request_information="best_model", filter=["model_accuracy"]
    ).get_json()["data"]
    assert best["model"] == "LogisticRegression"
    # A FAILED run has no model to deploy.
    setting = optimize(client, {"request_information": "setting", "run_id": by_model["RandomForest"].run_id})
    assert_error(setting, 409, "Run has no model")


def test_the_same_experiment_name_reuses_the_experiment_and_updates_its_tags(client, backend, training_loaded):
    small = {"models": ["LogisticRegression"], "hyperparameters": {"LogisticRegression": {"C": [1.0]}}, "cv": 2}
    first = optimize(client, optimization(**small)).get_json()["data"]
    body = optimization(**small)
    one = optimize(client, body).get_json()["data"]
    two = optimize(client, {**body, "experiment_owner": "Bea"}).get_json()["data"]
    assert one["experiment_id"] == two["experiment_id"] != first["experiment_id"]
    assert one["run_ids"]["LogisticRegression"] != two["run_ids"]["LogisticRegression"]
    general = experiments(client, experiment_id=one["experiment_id"], request_information="general").get_json()["data"]
    assert general["experiment_info"]["tags"]["owner"] == "Bea"
    assert general["experiment_runs"]["number_of_runs"] == 2


def test_deleting_runs_and_experiments(client, backend, training_loaded):
    small = {"models": ["LogisticRegression", "SVC"], "hyperparameters": {}, "cv": 2}
    body = optimization(**small)
    data = optimize(client, body).get_json()["data"]
    experiment_id, lr, svc = data["experiment_id"], data["run_ids"]["LogisticRegression"], data["run_ids"]["SVC"]
    other = optimize(client, optimization(**small)).get_json()["data"]

    # a run of another experiment is not found in this one, and cannot be deleted through it
    assert_error(
        client.delete(f"/root/tracking/runs?experiment_id={experiment_id}&run_id={other['run_ids']['SVC']}"), 404
    )
    deleted = client.delete(f"/root/tracking/runs?experiment_id={experiment_id}&run_id={lr}")
    assert deleted.status_code == 200
    assert deleted.get_json() == {
        "message": "Run deleted successfully",
        "data": {"experiment_id": experiment_id, "run_id": lr},
    }
    assert_error(runs(client, experiment_id=experiment_id, run_id=lr, request_information="metrics", type="model"), 404)
    assert_error(client.delete(f"/root/tracking/runs?experiment_id={experiment_id}&run_id={lr}"), 404)
    assert_error(optimize(client, {"request_information": "setting", "run_id": lr}), 404, "Run not found")
    listed = client.get(f"/root/tracking/runs?experiment_id={experiment_id}").get_json()["data"]
    assert [r["run_id"] for r in listed] == [svc]
    best = experiments(client, experiment_id=experiment_id, request_information="best_model", filter=["model_accuracy"])
    assert best.get_json()["data"]["run_id"] == svc

    deleted = client.delete(f"/root/tracking/experiments?experiment_id={experiment_id}")
    assert deleted.get_json() == {
        "message": "Experiment deleted successfully",
        "data": {"experiment_id": experiment_id},
    }
    assert_error(experiments(client, experiment_id=experiment_id, request_information="general"), 404)
    assert_error(
        runs(client, experiment_id=experiment_id, run_id=svc, request_information="metrics", type="model"), 404
    )
    assert_error(client.delete(f"/root/tracking/experiments?experiment_id={experiment_id}"), 404)
    assert_error(optimize(client, {"request_information": "setting", "run_id": svc}), 404)
    # the walkthrough deletes a run after its experiment: the run went with it, nothing to do
    deleted = client.delete(f"/root/tracking/runs?experiment_id={experiment_id}&run_id={svc}")
    assert deleted.status_code == 200
    assert deleted.get_json() == {
        "message": "Run deleted successfully",
        "data": {"experiment_id": experiment_id, "run_id": svc},
    }
    # ... but only through its own experiment
    assert_error(client.delete(f"/root/tracking/runs?experiment_id={other['experiment_id']}&run_id={svc}"), 404)
    assert experiment_id not in [
        e["experiment_id"] for e in client.get("/root/tracking/experiments").get_json()["data"]
    ]
    # the other experiment is untouched
    assert len(client.get(f"/root/tracking/runs?experiment_id={other['experiment_id']}").get_json()["data"]) == 2
    # a deleted experiment's name cannot be reused until MLflow purges it
    assert_error(optimize(client, {**body}), 409, "Experiment deleted")


def test_an_experiment_without_runs(client, backend):
    experiment_id = writes.find_or_create_experiment(backend, optimization()["experiment_name"], {})
    assert_error(client.get(f"/root/tracking/runs?experiment_id={experiment_id}"), 404, "No runs found")
    assert_error(
        experiments(client, experiment_id=experiment_id, request_information="statistics"), 404, "No runs found"
    )
    general = experiments(client, experiment_id=experiment_id, request_information="general").get_json()["data"]
    assert general["experiment_runs"]["number_of_runs"] == 0


def test_setting_with_the_ml_service_down_is_503_naming_it(client, backend, training_loaded):
    small = {"models": ["SVC"], "hyperparameters": {"SVC": {"C": [1.0]}}, "cv": 2}
    data = optimize(client, optimization(**small)).get_json()["data"]
    answer = assert_error(optimize(client, {"request_information": "setting", "run_id": data["run_ids"]["SVC"]}), 503)
    assert "ML service" in answer["error"] and "/root/ml/set_model" in answer["message"]


def test_health_checks_the_dataset_db_and_the_mlflow_store(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json() == {"status": "ok", "service": "tracking", "database": "ok", "mlflow": "ok"}


def test_an_unwritable_artifact_store_is_a_clear_500_and_its_run_is_failed(tracking_settings, tmp_path):
    from mlops.tracking.app import create_app

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the artifact root's directory should be")
    app = create_app(tracking_settings.model_copy(update={"mlflow_artifact_root": (blocker / "artifacts").as_uri()}))
    load_sets(state_of(app).engine, "training")
    client, backend = app.test_client(), state_of(app).resources.mlflow
    body = optimization(models=["LogisticRegression", "SVC"], hyperparameters={}, cv=2)
    answer = assert_error(optimize(client, body), 500, "Artifact store error")
    assert "MLFLOW_ARTIFACT_ROOT" in answer["message"]
    experiment = experiment_named(backend, body["experiment_name"])
    statuses = {run.tags["model_type"]: run.status for run in reads.list_runs(backend, [experiment.experiment_id])}
    # The first model's logging failed while the second was searched; both runs are ended.
    assert statuses["LogisticRegression"] == "FAILED"
    assert "RUNNING" not in statuses.values()
    state_of(app).dispose()


@pytest.mark.parametrize(
    "changes",
    [
        {"experiment_name": "wine\x00test"},
        {"experiment_owner": "me\x1b[2J"},
        {"experiment_description": "ok\x00"},
        {"hyperparameters": {"SVC": {"kernel": ["rbf\x07"]}}},
        {"hyperparameters": {"SVC": {"ker\nnel": ["rbf"]}}},
    ],
)
def test_control_characters_in_what_is_stored_are_a_400_and_nothing_is_logged(client, backend, changes):
    body = optimization(**changes)
    response = optimize(client, body)
    message = assert_error(response, 400)["message"]
    assert "control characters" in message
    assert "\x00" not in message and "\x1b" not in message and "\n" not in message  # named as escapes
    assert experiment_named(backend, body["experiment_name"]) is None


def test_a_new_sqlite_store_is_ready_at_the_first_probe(tmp_path):
    from mlops.kernel.config import Settings
    from mlops.tracking.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    answer = app.test_client().get("/ready")  # the store is made from the template: no MLflow migrations
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["checks"] == {"database": "ok", "mlflow": "ok", "mlflow_store": "ok"}
    state_of(app).dispose()
    state_of(app).resources.mlflow.dispose()


def test_ready_says_what_is_missing_until_mlflow_has_made_its_tables(tmp_path, postgres_database):
    import time

    from mlops.kernel.config import Settings
    from mlops.tracking.app import create_app

    app = create_app(Settings(data_dir=tmp_path, mlflow_tracking_uri=postgres_database()))
    client = app.test_client()
    first = client.get("/ready")
    # a database without MLflow's tables: the first readiness probe starts opening the store in the background
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert "MLflow store" in first.get_json()["checks"]["mlflow_store"]
    assert first.get_json()["message"].startswith("Not ready: mlflow_store: ")
    deadline = time.monotonic() + 120
    while (answer := client.get("/ready")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.get_json() == {
        "status": "ready",
        "service": "tracking",
        "checks": {"database": "ok", "mlflow": "ok", "mlflow_store": "ok"},
    }
    state_of(app).dispose()
    state_of(app).resources.mlflow.dispose()


def test_metrics_count_the_fits_by_model_and_outcome(client, training_loaded):
    from tests.support.metrics import app_samples, sample

    body = optimization(
        models=["LogisticRegression", "RandomForest"],
        hyperparameters={
            "LogisticRegression": {"C": [0.1, 1.0]},
            "RandomForest": {"n_estimators": [3], "bootstrap": [False, True], "max_samples": [0.5]},  # half fail
        },
        cv=3,
    )
    assert optimize(client, body).status_code == 201
    every_fit_fails = {"RandomForest": {"bootstrap": [False], "max_samples": [0.5]}}
    failing = optimization(models=["RandomForest"], hyperparameters=every_fit_fails, cv=3)
    assert_error(optimize(client, failing), 400, "Grid search failed")  # scikit-learn raises: every fit failed
    samples = app_samples(client)
    assert sample(samples, "optimization_fits_total", model="LogisticRegression", outcome="done") == 6
    assert sample(samples, "optimization_fits_total", model="LogisticRegression", outcome="failed") == 0
    assert sample(samples, "optimization_fits_total", model="RandomForest", outcome="done") == 3
    assert sample(samples, "optimization_fits_total", model="RandomForest", outcome="failed") == 3 + 3
    duration = "optimization_search_duration_seconds_count"
    assert sample(samples, duration, model="RandomForest", outcome="done") == 1
    assert sample(samples, duration, model="RandomForest", outcome="failed") == 1
