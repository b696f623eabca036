"""The example run the tracking service's examples show: its ids, the gate and verdict of its
retraining, the champion's moves and a run's statistics, as a real run answered them."""

from __future__ import annotations

from mlops.kernel.examples import ABRIDGED, RETRAIN_RUN

# Ids as the walkthrough shows them.
EXPERIMENT_ID = "1"
LR_RUN = "5f69f7ee0507453e9787991521adeb82"
RF_RUN = "2d8371356f1f4665b7697d732f5da3f3"
SVC_RUN = "0b9f23e1f0c046d39b39e4b0add4ac95"
JOB_ID = "0e4c3f8a9b2d4f6e8a1c3e5f7b9d2a4c"
ADOPTION_RUN = "2dbdf978bf7443cd9b09f2b2381112d4"
GATE = {
    "accuracy": {
        "challenger": 1.0,
        "champion": 0.9722222222222222,
        "margin": 0.01,
        "improvement": 0.02777777777777779,
        "passed": True,
    },
    "f1_score": {
        "challenger": 1.0,
        "champion": 0.9722633744855966,
        "margin": 0.01,
        "improvement": 0.027736625514403368,
        "passed": True,
    },
}
GATE_REASON = "the challenger beats the champion on every gate metric (accuracy by +0.0278, f1_score by +0.0277)"
VERDICT = {
    "retraining_advised": True,
    "reasons": ["40 of 86 tests did not pass: production data differs from testing data, consider re-training"],
}
ADOPTED_EVENT = {
    "sequence": 1,
    "action": "adopted",
    "champion": "1",
    "previous": None,
    "at": "2026-12-02T05:59:15+00:00",
    "by": "ML service training",
    "reason": "LogisticRegression trained through POST /root/ml (ML service version 2) is what the ML service serves",
    "run_id": ADOPTION_RUN,
}
PROMOTED_EVENT = {
    "sequence": 2,
    "action": "promoted",
    "champion": "2",
    "previous": "1",
    "at": "2026-12-02T05:59:16+00:00",
    "by": "retraining",
    "reason": f"monitoring verdict: retraining advised; {GATE_REASON}",
    "run_id": RETRAIN_RUN,
    "challenger": "2",
    "decision": "promoted",
    "gate": GATE,
    "held_out": {"testing": {"dataset_id": 2, "rows": 36}},
    "verdict": VERDICT,
}
STATISTICS = {
    "duration": {
        "mean": 0.8801535793333338,
        "median": 0.4428061589999288,
        "std_dev": 0.6340676252920066,
        "variance": 0.40204175344344445,
        "min": 0.4208832980000352,
        "max": 1.7767712810000376,
        "mode": 1.7767712810000376,
        "iqr": 1.3558879830000024,
    },
    "accuracy": {
        "mean": 0.9119496855345912,
        "median": 0.9150943396226415,
        "std_dev": 0.011766218197402329,
        "variance": 0.00013844389066888172,
        "min": 0.8962264150943396,
        "max": 0.9245283018867925,
        "mode": 0.9150943396226415,
        "iqr": 0.028301886792452824,
    },
    "f1_score": ABRIDGED,
    "precision": ABRIDGED,
    "recall": ABRIDGED,
}


def run_query(information: str, kind: str, run_id: str = LR_RUN) -> dict[str, str]:
    return {"experiment_id": EXPERIMENT_ID, "run_id": run_id, "request_information": information, "type": kind}
