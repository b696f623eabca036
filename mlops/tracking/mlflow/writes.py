"""Writing to MLflow: experiments created and deleted, runs started, logged and ended, models
logged and registered."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import tempfile
import time

from mlops.kernel.catalogue import TRUSTED_TYPES
from mlops.kernel.errors import ApiError, BadRequest, Conflict, NotFound
from mlops.tracking.mlflow.naming import MODEL_ARTIFACT, PROCESS_TAG
from mlops.tracking.mlflow.reads import get_experiment, get_run
from mlops.tracking.mlflow.store import FAILED, FINISHED, MlflowBackend, import_libraries, mlflow_errors, this_process

log = logging.getLogger(__name__)

# How many training rows a logged signature is inferred from (their dtypes and names suffice).
SIGNATURE_ROWS = 5


def find_or_create_experiment(backend: MlflowBackend, name: str, tags: dict[str, str]) -> str:
    """The id of the active experiment called name (created if new), with tags set on it."""
    import_libraries()
    from mlflow.entities import ExperimentTag
    from mlflow.exceptions import MlflowException

    client = backend.client()
    with mlflow_errors():
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                tag_list = [ExperimentTag(k, v) for k, v in tags.items()]
                return backend.experiment_store().create_experiment(name, tags=tag_list)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                # Another request created it between our lookup and our insert: use theirs.
                experiment = client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise Conflict(
                f"The experiment {name!r} (id {experiment.experiment_id}) was deleted, and MLflow keeps "
                "deleted names until `mlflow gc` purges them: use another experiment_name",
                error="Experiment deleted",
            )
        for key, value in tags.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id


def delete_experiment(backend: MlflowBackend, experiment_id: str) -> None:
    """Soft-delete an active experiment and its runs (MLflow's lifecycle stage "deleted")."""
    get_experiment(backend, experiment_id)
    with mlflow_errors():
        backend.client().delete_experiment(experiment_id)


def delete_run(backend: MlflowBackend, experiment_id: str, run_id: str) -> None:
    """Soft-delete one run of an experiment.

    Deleting an experiment deletes its runs with it; the walkthrough then deletes one of those
    runs, so a run of that experiment which went with it answers as deleted (nothing to do)
    rather than 404. A run deleted on its own before is a 404, like any unknown run.
    """
    client = backend.client()
    try:
        with mlflow_errors():
            run = client.get_run(run_id)
            experiment = client.get_experiment(run.info.experiment_id)
    except (NotFound, BadRequest):
        run = experiment = None
    if run is not None and run.info.experiment_id == experiment_id and experiment.lifecycle_stage != "active":
        return
    get_run(backend, run_id, experiment_id)
    with mlflow_errors():
        client.delete_run(run_id)


def start_run(backend: MlflowBackend, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    """Create a RUNNING run and return its id; whoever starts it must end_run it, come what may.

    A process killed outright cannot end its runs; the next process of this host to open the
    store ends them FAILED (see end_orphaned_runs).
    """
    with mlflow_errors():
        tags = {**tags, PROCESS_TAG: this_process()}
        return backend.client().create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def end_run(backend: MlflowBackend, run_id: str, error: BaseException | None = None) -> None:
    """End a run FINISHED, or FAILED with the error as its `error` tag.

    Ending a run FAILED never raises (it is called while another error propagates); if MLflow
    cannot be reached the failure is logged and the run is ended by the next start.
    """
    import_libraries()
    from mlflow.entities import RunTag

    client = backend.client()
    if error is None:
        with mlflow_errors():
            client.set_terminated(run_id, FINISHED)
        return
    try:
        with mlflow_errors():
            client.log_batch(run_id, tags=[RunTag("error", str(error)[:5000] or type(error).__name__)])
            client.set_terminated(run_id, FAILED)
    except Exception:
        log.exception("could not mark run %s FAILED", run_id)


def log_params_and_metrics(
    backend: MlflowBackend, run_id: str, params: dict[str, str], metrics: dict[str, float]
) -> None:
    """Log a run's params and metrics in one batch."""
    import_libraries()
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    with mlflow_errors():
        backend.client().log_batch(
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        )


def log_model(
    backend: MlflowBackend,
    experiment_id: str,
    run_id: str,
    estimator,
    registered_name: str,
    *,
    features=None,
    artifact_name: str = MODEL_ARTIFACT,
    version_tags: dict[str, str] | None = None,
) -> str:
    """Log a fitted estimator as one of the run's models (skops, only TRUSTED_TYPES loadable) and
    register it as a new version of registered_name (with version_tags); return the version.

    This is what mlflow.sklearn.log_model(..., registered_model_name=...) does, done through this
    backend's client instead of MLflow's process-wide one, and without its costly steps:
    requirements are given (not inferred by reloading the model), no input example. The
    signature is inferred from a few rows of `features` (the training frame) and the model's
    predictions for them, so MLflow's UI and scoring server know the inputs.
    """
    import_libraries()
    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model, infer_signature

    signature = None
    if features is not None:
        sample = features.head(SIGNATURE_ROWS)
        signature = infer_signature(sample, estimator.predict(sample))
    client = backend.client()
    with mlflow_errors():
        logged = client.create_logged_model(
            experiment_id, name=artifact_name, source_run_id=run_id, model_type=registered_name
        )
        try:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            with tempfile.TemporaryDirectory(prefix="mlops-model-") as directory:
                path = os.path.join(directory, artifact_name)
                description = Model(
                    artifact_path=logged.artifact_location,
                    model_uuid=logged.model_id,
                    run_id=run_id,
                    model_id=logged.model_id,
                )
                mlflow.sklearn.save_model(
                    estimator,
                    path,
                    mlflow_model=description,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                    skops_trusted_types=list(TRUSTED_TYPES),
                    pip_requirements=list(model_requirements()),
                    signature=signature,
                )
                try:
                    client.log_model_artifacts(logged.model_id, path)
                except OSError as error:
                    raise ApiError(
                        f"Could not store the model under {logged.artifact_location} ({error}): check "
                        "MLFLOW_ARTIFACT_ROOT",
                        error="Artifact store error",
                    ) from error
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        try:
            client.create_registered_model(registered_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # The source is the artifact location itself: a models:/ source would make MLflow look
        # the model up through its process-wide tracking URI, not this backend.
        version = client.create_model_version(
            registered_name,
            source=logged.artifact_location,
            run_id=run_id,
            model_id=logged.model_id,
            tags=version_tags,
            await_creation_for=0,
        )
    return str(version.version)


@functools.cache
def model_requirements() -> tuple[str, ...]:
    """The pip requirements of a logged estimator, pinned to the versions that saved it."""
    # mlops-microservices provides mlops.kernel.liblinear.LogisticRegression.
    names = ("scikit-learn", "skops", "numpy", "scipy", "mlops-microservices")
    requirements = []
    for name in names:
        try:
            requirements.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            requirements.append(name)
    return tuple(requirements)
