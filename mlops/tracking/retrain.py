"""Retraining: search again (as `optimization` does, logged the same way), fit the best model's
whole pipeline as the challenger, register it, score challenger and champion on the same
held-out rows, and let the gate promote the challenger or keep the champion.

Defaults come from the champion's own optimization: the models, grids, scoring and cv of the
runs of the experiment that logged it (a champion adopted from the ML service gives its model
and hyperparameters, cv 5, accuracy).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.kernel.errors import ApiError, Conflict
from mlops.kernel.pipelines import load_pipeline, make_pipeline
from mlops.tracking.champion.loop import REGISTERED_MODEL, Loop, ModelSpec
from mlops.tracking.champion.moves import promote, record_kept
from mlops.tracking.champion.sync import reconcile
from mlops.tracking.gate import classification_scores, judge
from mlops.tracking.mlflow import RunRecord, reads, registry, store, writes
from mlops.tracking.mlflow.naming import EXPERIMENT_TYPE, EXPERIMENT_TYPE_TAG, GRID_PREFIX, MODEL_TYPE_TAG
from mlops.tracking.mlflow.registry import ModelVersionRecord
from mlops.tracking.optimize import optimize
from mlops.tracking.plan import plan_searches
from mlops.tracking.schemas import OptimizationRequest, RetrainingRequest

if TYPE_CHECKING:
    from mlops.kernel.datasets import LoadedSet

log = logging.getLogger(__name__)

RETRAINING_TYPE = "Retraining"
DEFAULT_EXPERIMENT = "retraining"
OPTIMIZATION_HINT = 'POST /root/tracking/model_management {"request_information": "optimization", ...}'


@dataclass(frozen=True)
class SearchSpec:
    models: list[str]
    hyperparameters: dict[str, dict[str, list[Any]]]
    scoring: str
    cv: int
    experiment_name: str


def search_spec(loop: Loop, request: RetrainingRequest, champion: ModelVersionRecord | None) -> SearchSpec:
    """What to search: the request's choices, else those of the champion's optimization."""
    defaults = _champion_search(loop, champion) if champion is not None else None
    if request.models is None and defaults is None:
        missing = (
            "There is no champion yet"
            if champion is None
            else f"The champion (version {champion.version}) was not registered by this service"
        )
        raise Conflict(
            f"{missing}, so nothing to take the models and grids from: give `models` (and "
            f"`hyperparameters`), or make a champion first ({OPTIMIZATION_HINT}, then setting and "
            'POST /root/ml {"dataset": "training"})',
            error="No champion",
        )
    models = request.models or defaults.models
    if request.hyperparameters is not None:
        grids = request.hyperparameters
    elif request.models is None:
        grids = defaults.hyperparameters
    else:  # models chosen here: the champion's grids for those it has
        grids = {m: g for m, g in (defaults.hyperparameters if defaults else {}).items() if m in models}
    return SearchSpec(
        models=list(models),
        hyperparameters=grids,
        scoring=request.scoring or (defaults.scoring if defaults else "accuracy"),
        cv=request.cv or (defaults.cv if defaults else 5),
        experiment_name=request.experiment_name or (defaults.experiment_name if defaults else DEFAULT_EXPERIMENT),
    )


def _champion_search(loop: Loop, champion: ModelVersionRecord) -> SearchSpec | None:
    """The search that produced the champion: the latest FINISHED run of each model in its experiment
    (None for a champion this service did not register)."""
    run = reads.get_run(loop.backend, champion.run_id) if champion.run_id else None
    searched = run is not None and run.tags.get(EXPERIMENT_TYPE_TAG) in (EXPERIMENT_TYPE, RETRAINING_TYPE)
    if not searched:
        spec = ModelSpec.of(champion)
        if spec is None:
            return None
        grid = {key: [value] for key, value in spec.hyperparameters.items()}
        return SearchSpec([spec.model_name], {spec.model_name: grid}, "accuracy", 5, DEFAULT_EXPERIMENT)
    experiment = reads.get_experiment(loop.backend, run.experiment_id)
    latest: dict[str, RunRecord] = {}
    for other in reads.list_runs(loop.backend, [run.experiment_id]):  # newest first
        model = other.tags.get(MODEL_TYPE_TAG)
        if other.status == "FINISHED" and other.tags.get(EXPERIMENT_TYPE_TAG) in (EXPERIMENT_TYPE, RETRAINING_TYPE):
            latest.setdefault(model, other)
    grids = {model: _logged_grid(other.params) for model, other in latest.items()}
    params = run.params
    return SearchSpec(
        models=sorted(latest),
        hyperparameters=grids,
        scoring=params.get(f"{GRID_PREFIX}scoring", "accuracy"),
        cv=int(params.get(f"{GRID_PREFIX}cv_folds", "5")),
        experiment_name=experiment.name,
    )


def _logged_grid(params: dict[str, str]) -> dict[str, list[Any]]:
    """A run's grid back from its grid_search_<key> params (the candidate lists as Python text)."""
    grid = {}
    for key, text in params.items():
        if not key.startswith(GRID_PREFIX) or key in (f"{GRID_PREFIX}scoring", f"{GRID_PREFIX}cv_folds"):
            continue
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(values, list):
            grid[key[len(GRID_PREFIX) :]] = values
    return grid


@dataclass(frozen=True)
class TrainingData:
    """What the challenger learns from and what both models are judged on."""

    training: LoadedSet  # features imputed when production (with missing values) is included
    raw_features: Any  # the same rows before imputation: what the pipeline is fitted on
    held_out: list[LoadedSet]
    trained_on: dict[str, int]  # set name -> dataset version


def read_data(loop: Loop, include_production: bool) -> TrainingData:
    """Training (+ labelled production) to learn from; testing (+ production if not learned from) held out."""
    import pandas as pd
    from sklearn.impute import SimpleImputer

    from mlops.kernel.datasets import read_set

    with loop.engine.connect() as connection:
        training = read_set(connection, "training")
        production = read_set(connection, "production") if include_production else None
        testing = read_set(connection, "testing")
        held_out = [testing]
        if production is None:
            try:
                held_out.append(read_set(connection, "production"))
            except Conflict:  # not loaded: testing alone is held out
                pass
    trained_on = {"training": training.dataset_id}
    if production is None:
        return TrainingData(training, training.features, held_out, trained_on)
    trained_on["production"] = production.dataset_id
    raw = pd.concat([training.features, production.features], ignore_index=True)
    target = pd.concat([training.target, production.target], ignore_index=True)
    # The search runs on bare estimators (as optimization does): it sees the rows imputed as the
    # challenger's own imputer will (mean of these rows).
    imputed = pd.DataFrame(SimpleImputer(strategy="mean").fit_transform(raw), columns=raw.columns, index=raw.index)
    combined = dataclasses.replace(training, name="training+production", features=imputed, target=target)
    return TrainingData(combined, raw, held_out, trained_on)


def score_on(pipeline, sets: list[LoadedSet]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Scores on all held-out rows together, and on each set."""
    import numpy as np

    by_set, predicted_all, target_all = {}, [], []
    for loaded in sets:
        predicted = pipeline.predict(loaded.features)
        by_set[loaded.name] = classification_scores(loaded.target.to_numpy(), predicted)
        predicted_all.append(predicted)
        target_all.append(loaded.target.to_numpy())
    return classification_scores(np.concatenate(target_all), np.concatenate(predicted_all)), by_set


def retrain(loop: Loop, request: RetrainingRequest) -> dict[str, Any]:
    """Search, register the challenger, gate it against the champion, promote or keep; the answer's data."""
    store.import_libraries()
    try:
        reconcile(loop, adopt=True)  # a model trained through the ML service becomes the champion first
    except ApiError as error:  # an unreachable ML service does not stop a retraining
        log.warning("could not reconcile before retraining: %s", error.message)
    champion = registry.get_champion(loop.backend, REGISTERED_MODEL)
    spec = search_spec(loop, request, champion)
    optimization = OptimizationRequest(
        request_information="optimization",
        experiment_name=spec.experiment_name,
        experiment_description=None,
        experiment_owner=None,
        models=spec.models,
        hyperparameters=spec.hyperparameters,
        scoring=spec.scoring,
        cv=spec.cv,
    )
    plan_searches(optimization, loop.settings)  # a bad or too large grid is a 400 before any data is read
    data = read_data(loop, request.include_production_labels)
    searched = optimize(
        loop.backend,
        loop.engine,
        loop.settings,
        optimization,
        training=data.training,
        experiment_type=RETRAINING_TYPE,
        metrics=loop.metrics,
    )
    best = max(spec.models, key=lambda model: searched.results[model].best_score)
    result, run_id = searched.results[best], searched.run_ids[best]
    challenger_pipeline = make_pipeline(best, result.best_params).fit(data.raw_features, data.training.target)
    training_accuracy = float(
        (challenger_pipeline.predict(data.raw_features) == data.training.target.to_numpy()).mean()
    )
    version = writes.log_model(
        loop.backend,
        searched.experiment_id,
        run_id,
        challenger_pipeline,
        REGISTERED_MODEL,
        features=data.raw_features,
        artifact_name="pipeline",
        version_tags=ModelSpec(
            best, _plain(result.best_params), data.trained_on["training"], training_accuracy
        ).as_tags()
        | {"mlops.trained_on": json.dumps(data.trained_on)},
    )
    challenger = registry.get_version(loop.backend, REGISTERED_MODEL, version)

    challenger_scores, challenger_by_set = score_on(challenger_pipeline, data.held_out)
    champion_scores = champion_by_set = None
    if champion is not None:
        champion_pipeline = load_pipeline(registry.pipeline_bytes(loop.backend, champion))
        champion_scores, champion_by_set = score_on(champion_pipeline, data.held_out)
    gate = judge(challenger_scores, champion_scores, dict(request.gate))
    held_out = {s.name: {"dataset_id": s.dataset_id, "rows": len(s.target)} for s in data.held_out}
    verdict = _compact_verdict(request.verdict)
    record = {
        "decision": gate.decision,
        "gate": {check.metric: check.as_dict() for check in gate.checks},
        "held_out": held_out,
        "verdict": verdict,
    }
    writes.log_params_and_metrics(
        loop.backend,
        run_id,
        {},
        {f"gate_challenger_{m}": v for m, v in challenger_scores.items()}
        | ({f"gate_champion_{m}": v for m, v in champion_scores.items()} if champion_scores else {}),
    )
    registry.tag_version(
        loop.backend,
        REGISTERED_MODEL,
        version,
        {
            "mlops.gate_decision": gate.decision,
            "mlops.gate": json.dumps(record),
            "mlops.compared_with": champion.version if champion else "",
        },
    )
    reason = request.reason or ("monitoring verdict: retraining advised" if verdict else "retraining requested")
    details = {"challenger": version, **record}
    if gate.promoted:
        event, _ = promote(
            loop,
            version,
            action="promoted",
            by="retraining",
            reason=f"{reason}; {gate.reason}",
            details=details,
            compared_with=champion.version if champion else None,
        )
    else:
        with loop.lock():
            event = record_kept(loop, challenger, champion, f"{reason}; {gate.reason}", details)
    return {
        "decision": gate.decision,
        "reason": gate.reason,
        "challenger": _model_view(challenger, best, result.best_params, run_id, challenger_scores, challenger_by_set),
        "champion": _champion_view(champion, champion_scores, champion_by_set) if champion else None,
        "margins": dict(request.gate),
        "gate": record["gate"],
        "held_out": held_out,
        "trained_on": data.trained_on,
        "verdict": verdict,
        "champion_now": event["champion"],
        "event": event["sequence"],
        "experiment_id": searched.experiment_id,
        "run_ids": searched.run_ids,
    }


def _model_view(version, model_name, hyperparameters, run_id, scores, by_set) -> dict[str, Any]:
    return {
        "version": version.version,
        "model_name": model_name,
        "hyperparameters": _plain(hyperparameters or {}),
        "run_id": run_id,
        "scores": scores,
        "scores_by_set": by_set,
    }


def _champion_view(champion: ModelVersionRecord, scores, by_set) -> dict[str, Any]:
    spec = ModelSpec.of(champion)
    name, hyperparameters = (spec.model_name, spec.hyperparameters) if spec else (None, None)
    return _model_view(champion, name, hyperparameters, champion.run_id, scores, by_set)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON values (numpy scalars become Python ones)."""
    return {key: value.item() if hasattr(value, "item") else value for key, value in values.items()}


def _compact_verdict(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of monitoring's verdict kept with the decision: advised or not, its message, and
    the checks that fired (a registered model's tag is short)."""
    if verdict is None:
        return None
    reasons = verdict.get("reasons") or []
    fired = [r for r in reasons if not isinstance(r, dict) or r.get("fired", True)] if isinstance(reasons, list) else []
    compact = {
        "retraining_advised": verdict.get("retraining_advised"),
        "reasons": [_reason_text(reason) for reason in fired[:10]],
    }
    if verdict.get("message"):
        compact["message"] = str(verdict["message"])[:500]
    return compact


def _reason_text(reason: Any) -> str:
    """A fired check in a few words: "distribution shift (alcohol)", or the reason's own text."""
    if isinstance(reason, dict):
        feature = f" ({reason['feature']})" if reason.get("feature") else ""
        return f"{reason.get('check', 'check')}{feature}"[:200]
    return str(reason)[:200]
