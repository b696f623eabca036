"""The champion pushed by tracking: PUT /root/ml/model serves a registered version (idempotent),
adoption marks the service's own trained version in place, GET /root/ml/model gives the pipeline,
and what is not a catalogue pipeline is refused."""

from __future__ import annotations

import base64

from sqlalchemy import select

from mlops.kernel.db import model_deployments, prediction_batches
from mlops.kernel.pipelines import dump_pipeline
from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.ml import set_model, use


def pushed(pipeline_b64: str, version: str = "1", **changes) -> dict:
    return {
        "registered_model": "wine",
        "registered_version": version,
        "run_id": "r" * 32,
        "model_name": "RandomForest",
        "hyperparameters": {"n_estimators": 5},
        "training_dataset_id": 1,
        "training_accuracy": 1.0,
        "pipeline": pipeline_b64,
    } | changes


def test_a_pushed_version_is_served_once_and_named_in_every_answer(client, loaded):
    assert set_model(client, "RandomForest", {"n_estimators": 5}).status_code == 200
    assert use(client, "training").status_code == 200
    trained = client.get("/root/ml/model").get_json()
    assert trained["format"] == "skops" and trained["model"]["registered_version"] is None
    local_version = trained["model"]["version"]

    installed = client.put("/root/ml/model", json=pushed(trained["pipeline"]))
    assert installed.status_code == 200, installed.get_json()
    model = installed.get_json()["model"]
    assert installed.get_json()["message"] == "Model installed"
    assert (model["registered_model"], model["registered_version"], model["version"]) == (
        "wine",
        "1",
        local_version + 1,
    )
    again = client.put("/root/ml/model", json=pushed(trained["pipeline"])).get_json()
    assert again["message"] == "Model already served" and again["model"]["version"] == local_version + 1

    assert use(client, "testing").status_code == 200
    answer = client.post("/root/ml/predict", json=[WINE_SAMPLE]).get_json()
    assert answer["model"] == {"model_name": "RandomForest", "version": local_version + 1, "registered_version": "1"}
    with loaded.connect() as connection:
        deployments = connection.execute(
            select(model_deployments.c.source, model_deployments.c.registered_version)
        ).all()
        batches = connection.execute(
            select(
                prediction_batches.c.set_name,
                prediction_batches.c.model_version,
                prediction_batches.c.registered_version,
            )
        ).all()
    assert deployments == [("training", None), ("champion", "1")]
    assert batches == [("training", local_version, None), ("testing", local_version + 1, "1")]


def test_adoption_marks_the_trained_version_and_its_history_in_place(client, loaded):
    set_model(client, "RandomForest", {"n_estimators": 5})
    use(client, "training")
    use(client, "testing")
    trained = client.get("/root/ml/model").get_json()
    version = trained["model"]["version"]
    adopted = client.put("/root/ml/model", json=pushed(trained["pipeline"], "7", adopts_version=version)).get_json()
    assert adopted["model"]["version"] == version and adopted["model"]["registered_version"] == "7"
    with loaded.connect() as connection:
        marked = connection.execute(select(prediction_batches.c.registered_version)).scalars().all()
    assert marked == ["7", "7"]
    # a version replaced meanwhile is not installed over the newer model
    set_model(client, "RandomForest", {"n_estimators": 6})
    use(client, "training")
    newer = client.get("/root/ml/model").get_json()["model"]
    late = client.put("/root/ml/model", json=pushed(trained["pipeline"], "8", adopts_version=version)).get_json()
    assert late["message"] == "Model already served" and late["model"] == newer


def test_what_is_not_a_catalogue_pipeline_is_refused_and_nothing_changes(client, loaded):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    set_model(client, "RandomForest", {"n_estimators": 5})
    use(client, "training")
    before = client.get("/root/ml").get_json()
    foreign = Pipeline([("model", KNeighborsClassifier(n_neighbors=1))]).fit([[0.0] * 13, [1.0] * 13], [0, 1])
    for body, says in [
        (pushed("not base64!"), "base64"),
        (pushed("û\x134É"), "base64"),  # characters outside ASCII: base64 refuses them another way
        (pushed(base64.b64encode(b"garbage").decode()), "cannot be read"),
        (pushed(base64.b64encode(dump_pipeline(foreign)).decode()), "KNeighborsClassifier"),
    ]:
        refused = client.put("/root/ml/model", json=body)
        assert refused.status_code == 400 and says in refused.get_json()["message"], refused.get_json()
    assert client.get("/root/ml").get_json() == before
