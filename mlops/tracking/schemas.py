"""The tracking service's request models (optimization, setting, experiment and run queries) and
the models of its answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel

from mlops.kernel.catalogue import MODEL_NAMES, HyperparameterScalar, ModelName
from mlops.kernel.text import Name, Text
from mlops.kernel.web.parsing import WholeNumber
from mlops.tracking.gate import DEFAULT_MARGINS, GateMetric
from mlops.tracking.mlflow.naming import MODEL_METRICS, MetricKind, ParameterKind
from mlops.tracking.queries import STATISTIC_METRICS


class OptimizationRequest(BaseModel):
    """Grid-search these models on the training set and log one run per model in an experiment."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_information: Literal["optimization"]
    experiment_name: Name = Field(min_length=1, max_length=256, examples=["wine_test_1"])
    experiment_description: Text | None = Field(None, max_length=5000, description="tagged `description`")
    experiment_owner: Name | None = Field(None, max_length=250, description="tagged `owner`")
    models: list[ModelName] = Field(min_length=1, max_length=len(MODEL_NAMES))
    hyperparameters: dict[Name, dict[Name, list[HyperparameterScalar]]] = Field(
        default_factory=dict,
        description="per model: hyperparameter -> candidate values; a model without a grid is "
        "cross-validated with its defaults",
        examples=[{"LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]}}],
    )
    scoring: Name = Field("accuracy", description="a scikit-learn scorer name (sklearn.metrics.get_scorer_names())")
    cv: Annotated[int, Field(ge=2, le=1000), WholeNumber] = Field(5, description="cross-validation folds (stratified)")
    wait: bool = Field(
        True,
        description="false: answer 202 with a job_id at once and optimize in the background; "
        "GET /root/tracking/jobs/<job_id> tells its progress and, once done, this request's answer",
    )


# The walkthrough sends ids as strings ("1"); Postman users often type a number: both are fine.
ExperimentId = Annotated[
    Annotated[Name, Field(min_length=1, max_length=32)] | Annotated[int, Field(ge=0), WholeNumber],
    AfterValidator(str),
    Field(examples=["1"]),
]
RunId = Annotated[Name, Field(min_length=1, max_length=64, examples=["5f69f7ee0507453e9787991521adeb82"])]
BestModelMetric = Literal[MODEL_METRICS]
# "all", a statistic's name, or the name of the metric it describes
StatisticName = Literal[("all", *STATISTIC_METRICS, *STATISTIC_METRICS.values())]
STRICT = ConfigDict(extra="forbid", strict=True)


class GeneralQuery(BaseModel):
    """The experiment's details and its runs counted by status."""

    model_config = STRICT
    experiment_id: ExperimentId
    request_information: Literal["general"]


class BestModelQuery(BaseModel):
    """The run with the highest value of the filter's metrics (the first decides, the next break ties)."""

    model_config = STRICT
    experiment_id: ExperimentId
    request_information: Literal["best_model"]
    filter: list[BestModelMetric] = Field(min_length=1, max_length=len(MODEL_METRICS))


class StatisticsQuery(BaseModel):
    """mean, median, std_dev, variance, min, max, mode and iqr of the runs' metrics."""

    model_config = STRICT
    experiment_id: ExperimentId
    request_information: Literal["statistics"]
    filter: list[StatisticName] | None = Field(
        None, min_length=1, max_length=len(get_args(StatisticName)), description='absent or ["all"]: every metric'
    )


class ExperimentQuery(RootModel):
    """What to tell about one experiment: `general`, `best_model` or `statistics`."""

    root: Annotated[GeneralQuery | BestModelQuery | StatisticsQuery, Field(discriminator="request_information")]


class ParametersQuery(BaseModel):
    """A run's params of one kind: `data`, `grid_search` or `model`."""

    model_config = STRICT
    experiment_id: ExperimentId
    run_id: RunId
    request_information: Literal["parameters"]
    type: ParameterKind


class MetricsQuery(BaseModel):
    """A run's metrics of one kind: `system` or `model`."""

    model_config = STRICT
    experiment_id: ExperimentId
    run_id: RunId
    request_information: Literal["metrics"]
    type: MetricKind


class LineageQuery(BaseModel):
    """The registered versions a run logged, when they were champion, and the deployments and
    prediction batches made with them."""

    model_config = STRICT
    experiment_id: ExperimentId
    run_id: RunId
    request_information: Literal["lineage"]


class RunQuery(RootModel):
    """What to tell about one run: its `parameters`, its `metrics` or its `lineage`."""

    root: Annotated[ParametersQuery | MetricsQuery | LineageQuery, Field(discriminator="request_information")]


class SettingRequest(BaseModel):
    """Deploy a run's best model (type and hyperparameters) to the ML service."""

    model_config = STRICT
    request_information: Literal["setting"]
    run_id: RunId


Margin = Annotated[float, Field(gt=0, le=1)]


class RetrainingRequest(BaseModel):
    """Search again, gate the best model (the challenger) against the champion, promote or keep."""

    model_config = STRICT

    request_information: Literal["retraining"]
    experiment_name: Name | None = Field(
        None, min_length=1, max_length=256, description="default: the champion's experiment, else `retraining`"
    )
    models: list[ModelName] | None = Field(
        None, min_length=1, max_length=len(MODEL_NAMES), description="default: the champion's optimization"
    )
    hyperparameters: dict[Name, dict[Name, list[HyperparameterScalar]]] | None = Field(
        None, description="per model: hyperparameter -> candidates (default: the champion's optimization)"
    )
    scoring: Name | None = Field(None, description="a scikit-learn scorer (default: the champion's optimization)")
    cv: Annotated[int, Field(ge=2, le=1000), WholeNumber] | None = Field(
        None, description="folds (default: the champion's optimization)"
    )
    include_production_labels: bool = Field(
        False, description="train on training plus the labelled production set (then only testing is held out)"
    )
    gate: dict[GateMetric, Margin] = Field(
        default_factory=lambda: dict(DEFAULT_MARGINS),
        min_length=1,
        description="metric -> margin: the challenger must score at least champion + margin on each, on the "
        "held-out rows",
        examples=[{"accuracy": 0.01, "f1_score": 0.01}],
    )
    verdict: dict[str, Any] | None = Field(
        None, description="the monitoring verdict that triggered the retraining, recorded with the decision"
    )
    reason: Text | None = Field(None, max_length=1000, description="why, in words (recorded)")


class PromotionRequest(BaseModel):
    """Make a registered version of the served model the champion, by hand (no gate)."""

    model_config = STRICT
    request_information: Literal["promotion"]
    version: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,17}$", examples=["2"])]
    reason: Text | None = Field(None, max_length=1000, description="why, in words (recorded)")


class RollbackRequest(BaseModel):
    """Move the champion back to the version that held it before, in one call."""

    model_config = STRICT
    request_information: Literal["rollback"]
    reason: Text | None = Field(None, max_length=1000, description="why, in words (recorded)")


class ModelManagement(RootModel):
    """`optimization` (grid search + CV logged to MLflow), `setting` (deploy a run's model),
    `retraining` (search, gate against the champion, promote or keep), `promotion` or `rollback`."""

    root: Annotated[
        OptimizationRequest | SettingRequest | RetrainingRequest | PromotionRequest | RollbackRequest,
        Field(discriminator="request_information"),
    ]


class ExperimentSelector(BaseModel):
    model_config = STRICT
    experiment_id: ExperimentId


class RunSelector(BaseModel):
    model_config = STRICT
    experiment_id: ExperimentId
    run_id: RunId


# --- answers: {"message": ..., "data": ...} as the walkthrough shows them -------------------------------


class RunIds(BaseModel):
    experiment_id: str
    run_ids: dict[str, str] = Field(description="model name -> the id of its run")


class OptimizationLogged(BaseModel):
    message: str
    data: RunIds


class Job(BaseModel):
    """An optimization sent with "wait": false."""

    job_id: str
    state: Literal["queued", "running", "done", "failed"]
    fits_done: int
    fits_total: int
    elapsed_seconds: float
    submitted_at: str
    status_code: int | None = Field(description="the status of its answer, once ended")
    answer: dict[str, Any] | None = Field(description="what the blocking request would have answered, once ended")


class JobAnswer(BaseModel):
    message: str
    data: Job


class ManagementAnswer(BaseModel):
    """Setting: the ML service's answer; retraining: the gate's decision; promotion, rollback: the move."""

    message: str
    data: dict[str, Any] | None = None


class ChampionReport(BaseModel):
    registered_model: str
    alias: str
    champion: dict[str, Any] | None = Field(description="the version the alias names, null before the first")
    served: dict[str, Any] | str | None = Field(description="the ML service's model, or why it is unknown")
    in_step: bool = Field(description="the alias, the latest move and the served model name the same version")
    rollback_to: str | None = Field(description="the version a rollback moves the champion to")
    history: list[dict[str, Any]] = Field(description="the champion's moves, oldest first")
    note: str | None = None


class ChampionHistory(BaseModel):
    message: str
    data: ChampionReport


class ExperimentOverview(BaseModel):
    experiment_id: str
    name: str
    lifecycle_stage: str
    run_count: int


class ExperimentList(BaseModel):
    message: str
    data: list[ExperimentOverview]


class ExperimentInfo(BaseModel):
    experiment_id: str
    experiment_name: str
    artifact_location: str | None
    lifecycle_stage: str
    tags: dict[str, str]
    data_creation: str | None
    last_updated: str | None


class ExperimentRuns(BaseModel):
    number_of_runs: int
    completed_runs: int
    failed_runs: int
    active_runs: int
    stopped_runs: int
    first_run_completed: str | None
    last_run_completed: str | None


class ExperimentGeneral(BaseModel):
    experiment_info: ExperimentInfo
    experiment_runs: ExperimentRuns


class BestRun(BaseModel):
    run_id: str
    run_name: str | None
    model: str | None
    metrics: dict[str, float]


class Statistics(BaseModel):
    mean: float
    median: float
    std_dev: float
    variance: float
    min: float
    max: float
    mode: float
    iqr: float


class ExperimentInformation(BaseModel):
    """general: the experiment and its runs counted; best_model: the best run; statistics: per metric."""

    message: str
    data: ExperimentGeneral | BestRun | dict[str, Statistics]


class RunSummary(BaseModel):
    run_id: str
    status: str
    start_time: str | None
    end_time: str | None
    run_name: str | None
    tags: dict[str, str]


class RunList(BaseModel):
    message: str
    data: list[RunSummary]


class RunInformation(BaseModel):
    """parameters: name -> logged string; metrics: name -> number; lineage: versions, deployments, batches."""

    message: str
    data: dict[str, Any]


class Deleted(BaseModel):
    message: str
    data: dict[str, str] = Field(description="the ids of what was deleted")
