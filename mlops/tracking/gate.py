"""The gate between a challenger and the champion: both scored on the same held-out rows, the
challenger promoted only if it beats the champion by a margin on every gate metric.

The rule is MLflow's own (`mlflow.validate_evaluation_results` with
`MetricThreshold(min_absolute_change=margin, greater_is_better=True)`): the challenger passes a
metric when challenger >= champion + margin, margins being positive, so an equal score never
promotes. Written out here because MLflow's function takes `mlflow.evaluate` results, and
evaluating two small pipelines on 72 rows needs no more than scikit-learn's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

# The scores a gate may compare (classification_scores gives them all).
GATE_METRICS = ("accuracy", "f1_score", "precision", "recall")
GateMetric = Literal[GATE_METRICS]
DEFAULT_MARGINS: dict[str, float] = {"accuracy": 0.01, "f1_score": 0.01}


def classification_scores(target, predicted) -> dict[str, float]:
    """Accuracy and weighted F1 / precision / recall of predictions against targets."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(target, predicted, average="weighted", zero_division=0)
    return {
        "accuracy": float(accuracy_score(target, predicted)),
        "f1_score": float(f1),
        "precision": float(precision),
        "recall": float(recall),
    }


@dataclass(frozen=True)
class MetricCheck:
    """One gate metric: both scores, the margin asked for and whether the challenger passed."""

    metric: str
    challenger: float
    champion: float | None
    margin: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "challenger": self.challenger,
            "champion": self.champion,
            "margin": self.margin,
            "improvement": None if self.champion is None else self.challenger - self.champion,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class GateResult:
    """The decision and the per-metric checks behind it."""

    decision: Literal["promoted", "kept"]
    checks: list[MetricCheck]
    reason: str

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"


def judge(challenger: dict[str, float], champion: dict[str, float] | None, margins: dict[str, float]) -> GateResult:
    """Promote if there is no champion, or if the challenger >= champion + margin on every margin's metric."""
    if not margins:
        raise ValueError("the gate needs at least one metric with a margin")
    if champion is None:
        checks = [MetricCheck(m, challenger[m], None, margin, True) for m, margin in margins.items()]
        return GateResult("promoted", checks, "there is no champion yet: the challenger becomes the first")
    checks = [
        MetricCheck(m, challenger[m], champion[m], margin, _beats(challenger[m], champion[m], margin))
        for m, margin in margins.items()
    ]
    failed = [check for check in checks if not check.passed]
    if not failed:
        beaten = ", ".join(f"{c.metric} by {c.challenger - c.champion:+.4f}" for c in checks)
        return GateResult("promoted", checks, f"the challenger beats the champion on every gate metric ({beaten})")
    missed = ", ".join(
        f"{c.metric} {c.challenger:.4f} vs {c.champion:.4f} (needs >= {c.champion + c.margin:.4f})" for c in failed
    )
    return GateResult("kept", checks, f"the challenger does not beat the champion by the margin on {missed}")


def _beats(challenger: float, champion: float, margin: float) -> bool:
    """challenger >= champion + margin, compared in decimal as MLflow does (0.1 + 0.2 is 0.3 here)."""
    return Decimal(str(challenger)) >= Decimal(str(champion)) + Decimal(str(margin))
