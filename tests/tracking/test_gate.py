"""The gate: the challenger is promoted only if it scores at least champion + margin on every gate metric."""

from __future__ import annotations

import pytest

from mlops.tracking.gate import DEFAULT_MARGINS, classification_scores, judge

CHAMPION = {"accuracy": 0.9, "f1_score": 0.88, "precision": 0.9, "recall": 0.9}


def test_without_a_champion_the_challenger_is_the_first():
    result = judge({"accuracy": 0.5, "f1_score": 0.4}, None, DEFAULT_MARGINS)
    assert result.decision == "promoted" and "no champion" in result.reason
    assert [c.champion for c in result.checks] == [None, None]


def test_beating_the_champion_by_the_margin_on_every_metric_promotes():
    result = judge({"accuracy": 0.92, "f1_score": 0.9}, CHAMPION, {"accuracy": 0.02, "f1_score": 0.02})
    assert result.promoted and all(check.passed for check in result.checks)
    assert result.checks[0].as_dict() == {
        "challenger": 0.92,
        "champion": 0.9,
        "margin": 0.02,
        "improvement": pytest.approx(0.02),
        "passed": True,
    }


@pytest.mark.parametrize(
    "challenger, failing",
    [
        ({"accuracy": 0.9, "f1_score": 0.88}, ["accuracy", "f1_score"]),  # equal is no improvement
        ({"accuracy": 0.95, "f1_score": 0.885}, ["f1_score"]),  # one metric short of the margin
        ({"accuracy": 0.85, "f1_score": 0.95}, ["accuracy"]),  # worse on one
    ],
)
def test_falling_short_on_any_metric_keeps_the_champion(challenger, failing):
    result = judge(challenger, CHAMPION, DEFAULT_MARGINS)
    assert result.decision == "kept"
    assert [c.metric for c in result.checks if not c.passed] == failing
    assert all(metric in result.reason for metric in failing)


def test_the_margin_is_compared_in_decimal_as_mlflow_does():
    # 0.7 + 0.1 is 0.7999999999999999 in binary floating point: 0.8 passes, as in MLflow's own check.
    assert judge({"accuracy": 0.8}, {"accuracy": 0.7}, {"accuracy": 0.1}).promoted
    assert not judge({"accuracy": 0.79999}, {"accuracy": 0.7}, {"accuracy": 0.1}).promoted


def test_only_the_metrics_given_margins_are_gated():
    result = judge({"accuracy": 0.95, "f1_score": 0.1}, CHAMPION, {"accuracy": 0.01})
    assert result.promoted and [c.metric for c in result.checks] == ["accuracy"]
    with pytest.raises(ValueError):
        judge({"accuracy": 0.95}, CHAMPION, {})


def test_scores_are_accuracy_and_weighted_f1_precision_recall():
    scores = classification_scores([0, 0, 1, 2], [0, 1, 1, 2])
    assert scores["accuracy"] == 0.75
    assert set(scores) == {"accuracy", "f1_score", "precision", "recall"}
