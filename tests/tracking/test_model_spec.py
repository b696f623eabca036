"""A registered version's spec (what the ML service needs to serve it) as version tags, and back."""

from __future__ import annotations

from mlops.tracking.champion.loop import ModelSpec
from mlops.tracking.mlflow.registry import ModelVersionRecord


def version_with(tags: dict[str, str]) -> ModelVersionRecord:
    return ModelVersionRecord("wine", "3", "run", "models:/m-1", None, tags, [])


def test_a_spec_comes_back_from_its_tags_as_it_was():
    spec = ModelSpec("RandomForest", {"n_estimators": 100, "max_depth": None}, 7, 0.9859154929577465)
    tags = spec.as_tags()
    assert tags["mlops.model_name"] == "RandomForest"
    assert tags["mlops.training_accuracy"] == "0.9859154929577465"
    assert ModelSpec.of(version_with(tags | {"mlops.promoted_by": "retraining"})) == spec


def test_unknown_training_set_and_accuracy_are_empty_tags_and_come_back_as_none():
    spec = ModelSpec("SVC", {}, None, None)
    assert spec.as_tags()["mlops.training_dataset_id"] == "" and spec.as_tags()["mlops.training_accuracy"] == ""
    assert ModelSpec.of(version_with(spec.as_tags())) == spec


def test_a_version_registered_elsewhere_has_no_spec_and_the_first_missing_tag_is_named():
    tags = ModelSpec("SVC", {"C": 1.0}, 1, 0.5).as_tags()
    del tags["mlops.hyperparameters"]
    assert ModelSpec.of(version_with(tags)) is None
    assert ModelSpec.missing_tag(version_with(tags)) == "mlops.hyperparameters"
    assert ModelSpec.missing_tag(version_with({})) == "mlops.model_name"
