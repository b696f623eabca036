"""P3 monitoring: the report over HTTP against raw Evidently in process on the same frames, and a
repeat on unchanged data.

Each try changes the data (the production set is reloaded and evaluated again, a new version the
service has not seen), then times POST /root/monitoring {"metric": "report"} and the same request
again, and raw Evidently (the same four presets, run + JSON) on the frames the service reads.

Goals: report <= 1.2x raw Evidently (medians); repeat on unchanged data <= 50 ms.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from bench.harness import Config, Goal, Result, bench_settings, call, median, profiled, say, services, table, timed
from bench.p4_scale import WALKTHROUGH_MODEL

TARGET, PREDICTION = "target", "prediction"


def run(config: Config) -> Result:
    """Alternate: new data -> service report, repeat; raw Evidently on the same frames."""
    repeats = 1 if config.quick else 5
    result = Result("p3")
    with tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        settings = bench_settings(Path(data_dir))
        with services(settings, ["simulator", "ml", "monitoring"]) as running:
            simulator, ml, monitoring = (running[n].url for n in ("simulator", "ml", "monitoring"))
            for set_name in ("training", "testing", "production"):
                call("POST", simulator + "/root/simulator", json={"set_name": set_name})
            call("POST", ml + "/root/ml/set_model", json=WALKTHROUGH_MODEL)
            for set_name in ("training", "testing", "production"):
                call("POST", ml + "/root/ml", json={"dataset": set_name})
            raw_times, report_times, repeat_times = [], [], []
            for attempt in range(repeats + 1):
                call("POST", simulator + "/root/simulator", json={"set_name": "production"})
                call("POST", ml + "/root/ml", json={"dataset": "production"})
                with profiled(
                    "p3-report", {"monitoring": running["monitoring"].process.pid}, config.profile and attempt == 1
                ):
                    report_s, _ = timed(
                        lambda: call("POST", monitoring + "/root/monitoring", json={"metric": "report"})
                    )
                repeat_s, _ = timed(lambda: call("POST", monitoring + "/root/monitoring", json={"metric": "report"}))
                reference, current = frames(settings.dataset_db)
                raw_s, _ = timed(functools.partial(raw_evidently_report, reference, current))
                say(
                    f"p3: try {attempt}: service report {report_s:.2f} s, again {repeat_s * 1000:.1f} ms; raw Evidently {raw_s:.2f} s"
                )
                if attempt == 0:  # the first of each side imports Evidently: shown, not counted
                    first = {"report_s": report_s, "raw_s": raw_s}
                    continue
                raw_times.append(raw_s)
                report_times.append(report_s)
                repeat_times.append(repeat_s)
    raw, report, repeat = median(raw_times), median(report_times), median(repeat_times)
    say(
        table(
            ["what", "seconds"],
            [
                ["raw Evidently Report.run + json, in process (median)", raw],
                ["POST /root/monitoring report, new data (median)", report],
                ["the same request again, unchanged data (median)", repeat],
                ["first report after start (imports Evidently)", first["report_s"]],
            ],
        )
    )
    result.figures = {
        "repeats": repeats,
        "raw_s": raw_times,
        "report_s": report_times,
        "repeat_s": repeat_times,
        "first": first,
    }
    result.goals = [
        Goal("report / raw Evidently", report / raw, 1.2, "x", at_most=True),
        Goal("repeat on unchanged data", repeat * 1000, 50, "ms", at_most=True),
    ]
    return result


def frames(dataset_db: str):
    """The testing and production sets with targets and predictions, as the service reads them."""
    from mlops.kernel.datasets import read_set
    from mlops.kernel.db import make_engine

    engine = make_engine(dataset_db)
    with engine.connect() as connection:
        loaded = [read_set(connection, name, with_predictions=True) for name in ("testing", "production")]
    engine.dispose()
    return [s.features.assign(**{TARGET: s.target, PREDICTION: s.prediction}) for s in loaded]


def raw_evidently_report(reference, current) -> str:
    """Evidently's legacy Report with the four presets, run and rendered as JSON."""
    from evidently.legacy.metric_preset import (
        ClassificationPreset,
        DataDriftPreset,
        DataQualityPreset,
        TargetDriftPreset,
    )
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    from mlops.kernel.db import FEATURES

    report = Report(metrics=[DataDriftPreset(), DataQualityPreset(), TargetDriftPreset(), ClassificationPreset()])
    mapping = ColumnMapping(
        target=TARGET, prediction=PREDICTION, numerical_features=list(FEATURES), task="classification"
    )
    report.run(reference_data=reference, current_data=current, column_mapping=mapping)
    return report.json()
