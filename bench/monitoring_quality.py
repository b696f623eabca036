"""monitoring_quality: the re-training verdict's false-alarm and detection rates, measured.

Seeded production batches per scenario go through the running services over HTTP, on
PostgreSQL: POST /root/simulator (the scenario: its ground truth), POST /root/ml (evaluate
production), POST /root/monitoring {"metric": "verdict"}. Each cell counts the batches where
re-training was advised, with a 95 % Wilson interval. Then the verdict's time against the raw
computations it runs (read the sets, the same library statistics in process), and a repeat on
unchanged data.

Goals: clean batches (36 and 360 rows) advised <= 5 %; at 36 rows +1.0 sd in 3 features, 10 %
MCAR missing values, one class only >= 95 %, the walkthrough's fouling >= 99 %; at 360 rows
+0.5 sd in 3 features >= 95 %; verdict <= 1.2x raw; repeat <= 50 ms.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from sqlalchemy import Engine

from bench.harness import (
    RESULTS_DIR,
    Config,
    Goal,
    Result,
    bench_settings,
    median,
    postgres_database,
    say,
    services,
    table,
    timed,
)
from mlops.kernel.db import FEATURES, make_engine
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL

BATCHES = 200
SHIFTED_FEATURES = 3
SHIFTS = (0.25, 0.5, 0.75, 1.0, 1.5)
TIMING_TRIES = 30


@dataclass(frozen=True)
class Cell:
    """One row of the table: a scenario at a size, judged against one reference."""

    name: str
    size: int
    scenario: dict[str, Any]
    reference: str = "testing"
    goal: float | None = None  # share of batches advised: at most (clean) or at least (faults)
    shift: float | None = None  # the shift of SHIFTED_FEATURES random features, in sd

    @property
    def clean(self) -> bool:
        """No fault at all: a clean draw."""
        return self.shift is None and set(self.scenario) <= {"rows_from"}


def cells(quick: bool) -> list[Cell]:
    """The scenarios measured: the goals, detection against shift size, the larger reference."""
    if quick:
        return [Cell("clean", 36, {}, goal=0.05), Cell("+1.0 sd in 3 features", 36, {}, goal=0.95, shift=1.0)]
    measured = [
        Cell("clean", 36, {}, goal=0.05),
        Cell("clean", 360, {}, goal=0.05),
        Cell("10 % MCAR missing", 36, {"missing": {"rate": 0.1, "mechanism": "MCAR"}}, goal=0.95),
        Cell("10 % MAR missing", 36, {"missing": {"rate": 0.1, "mechanism": "MAR"}}),
        Cell("the walkthrough's fouling", 36, {"fouling": True}, goal=0.99),
        Cell("one class only", 36, {"class_weights": "one class"}, goal=0.95),
    ]
    for size in (36, 360):
        for shift in SHIFTS:
            goal = 0.95 if (size, shift) in ((36, 1.0), (360, 0.5)) else None
            measured.append(Cell(f"+{shift} sd in 3 features", size, {}, goal=goal, shift=shift))
    # The larger reference: clean rows then come from the production split's rows only (the
    # rows outside training + testing), so that they stay independent of the reference.
    larger = {"rows_from": "production"}
    for size in (36, 360):
        measured.append(Cell("clean", size, larger, "training+testing", goal=0.05))
        for shift in (0.25, 0.5, 1.0):
            goal = 0.95 if (size, shift) in ((36, 1.0), (360, 0.5)) else None
            measured.append(Cell(f"+{shift} sd in 3 features", size, larger, "training+testing", goal, shift))
    return measured


def run(config: Config) -> Result:
    """Every cell's batches through the services, then the verdict's timings."""
    batches = 3 if config.quick else BATCHES
    result = Result("monitoring_quality")
    rows = []
    with postgres_database() as url, tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        settings = bench_settings(Path(data_dir), dataset_db_url=url)
        with services(settings, ["simulator", "ml", "monitoring"]) as running:
            urls = {name: running[name].url for name in ("simulator", "ml", "monitoring")}
            session = requests.Session()
            prepare(session, urls)
            for number, cell in enumerate(cells(config.quick)):
                rows.append(measure_cell(session, urls, cell, batches, seed_base=1_000_000 * (number + 1)))
                say(f"monitoring_quality: {describe_row(rows[-1])}")
            timings = measure_times(
                session, urls, make_engine(settings.dataset_db), 2 if config.quick else TIMING_TRIES
            )
    say(
        table(
            ["scenario", "rows", "reference", "batches", "advised", "95 % interval", "right reason", "goal"],
            [
                [
                    row["scenario"],
                    str(row["size"]),
                    row["reference"],
                    str(row["batches"]),
                    f"{row['advised']:.1%}",
                    f"{row['interval'][0]:.1%} - {row['interval'][1]:.1%}",
                    "" if row["right_reason"] is None else f"{row['right_reason']:.1%}",
                    goal_text(row),
                ]
                for row in rows
            ],
        )
    )
    say(
        table(
            ["what", "ms (median)"],
            [
                ["raw computations in process: read the 2 sets + the library statistics", timings["raw_s"] * 1000],
                ["POST /root/monitoring verdict, new data", timings["verdict_s"] * 1000],
                ["the same request again, unchanged data", timings["repeat_s"] * 1000],
            ],
        )
    )
    result.figures = {"batches": batches, "cells": rows, "timings": timings}
    result.goals = [
        Goal(
            f"advised, {row['scenario']}, {row['size']} rows, {row['reference']}",
            100 * row["advised"],
            100 * row["goal"],
            "%",
            at_most=row["clean"],
        )
        for row in rows
        if row["goal"] is not None
    ] + [
        Goal("verdict / raw computations", timings["verdict_s"] / timings["raw_s"], 1.2, "x", at_most=True),
        Goal("verdict repeat on unchanged data", timings["repeat_s"] * 1000, 50, "ms", at_most=True),
    ]
    if not config.quick:
        plot(rows, RESULTS_DIR / "monitoring_quality.png")
    return result


def prepare(session: requests.Session, urls: dict[str, str]) -> None:
    """Load training and testing, deploy and train the walkthrough's random forest, evaluate testing."""
    for set_name in ("training", "testing"):
        post(session, urls["simulator"] + "/root/simulator", {"set_name": set_name})
    post(session, urls["ml"] + "/root/ml/set_model", RANDOM_FOREST_MODEL)
    for set_name in ("training", "testing"):
        post(session, urls["ml"] + "/root/ml", {"dataset": set_name})


def post(session: requests.Session, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = session.post(url, json=body, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"POST {url} {body} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def measure_cell(
    session: requests.Session, urls: dict[str, str], cell: Cell, batches: int, seed_base: int
) -> dict[str, Any]:
    """Run a cell's batches; the share advised, its interval, and how often the right reason fired."""
    from statsmodels.stats.proportion import proportion_confint

    advised = 0
    right_reason = 0
    families: dict[str, int] = {}
    for batch in range(batches):
        seed = seed_base + batch
        rng = np.random.default_rng(seed)
        scenario = {key: value for key, value in cell.scenario.items() if key != "class_weights"}
        shifted: list[str] = []
        if cell.shift is not None:
            shifted = [FEATURES[j] for j in rng.choice(len(FEATURES), SHIFTED_FEATURES, replace=False)]
            scenario["shift"] = dict.fromkeys(shifted, cell.shift)
        if cell.scenario.get("class_weights") == "one class":
            scenario["class_weights"] = [1.0 if c == batch % 3 else 0.0 for c in range(3)]
        post(
            session,
            urls["simulator"] + "/root/simulator",
            {"set_name": "production", "size": cell.size, "seed": seed, "scenario": scenario},
        )
        post(session, urls["ml"] + "/root/ml", {"dataset": "production"})
        answer = post(
            session, urls["monitoring"] + "/root/monitoring", {"metric": "verdict", "reference": cell.reference}
        )
        verdict = answer["data"]
        advised += verdict["retraining_advised"]
        fired = [reason for reason in verdict["reasons"] if reason["fired"]]
        for check in {reason["check"] for reason in fired}:
            families[check] = families.get(check, 0) + 1
        if shifted and any(reason.get("feature") in shifted for reason in fired):
            right_reason += 1
    low, high = proportion_confint(advised, batches, alpha=0.05, method="wilson")
    return {
        "scenario": cell.name,
        "size": cell.size,
        "reference": cell.reference,
        "rows_from": cell.scenario.get("rows_from", "training+production"),
        "shift": cell.shift,
        "clean": cell.clean,
        "batches": batches,
        "advised": advised / batches,
        "interval": [float(low), float(high)],
        "right_reason": right_reason / batches if cell.shift is not None else None,
        "fired_by_check": {name: count / batches for name, count in families.items()},
        "goal": cell.goal,
    }


def goal_text(row: dict[str, Any]) -> str:
    if row["goal"] is None:
        return ""
    met = row["advised"] <= row["goal"] if row["clean"] else row["advised"] >= row["goal"]
    return f"{'<=' if row['clean'] else '>='} {row['goal']:.0%} {'met' if met else 'MISSED'}"


def describe_row(row: dict[str, Any]) -> str:
    low, high = row["interval"]
    return (
        f"{row['scenario']}, {row['size']} rows, reference {row['reference']}: advised {row['advised']:.1%} "
        f"({low:.1%} - {high:.1%}) of {row['batches']}; fired by check {row['fired_by_check']} {goal_text(row)}"
    )


def measure_times(session: requests.Session, urls: dict[str, str], engine: Engine, tries: int) -> dict[str, Any]:
    """Per try: a new clean batch, the verdict over HTTP, again, and the raw computations in process."""
    raw_times, verdict_times, repeat_times = [], [], []
    for attempt in range(tries + 1):
        post(
            session,
            urls["simulator"] + "/root/simulator",
            {"set_name": "production", "seed": 7_000 + attempt, "scenario": {}},
        )
        post(session, urls["ml"] + "/root/ml", {"dataset": "production"})
        verdict_s, _ = timed(lambda: post(session, urls["monitoring"] + "/root/monitoring", {"metric": "verdict"}))
        repeat_s, _ = timed(lambda: post(session, urls["monitoring"] + "/root/monitoring", {"metric": "verdict"}))
        raw_s, _ = timed(lambda: raw_computations(engine))
        if attempt == 0:  # the first of each side imports Evidently, SciPy and statsmodels: not counted
            continue
        raw_times.append(raw_s)
        verdict_times.append(verdict_s)
        repeat_times.append(repeat_s)
    return {
        "tries": tries,
        "raw_s": median(raw_times),
        "verdict_s": median(verdict_times),
        "repeat_s": median(repeat_times),
        "all": {"raw_s": raw_times, "verdict_s": verdict_times, "repeat_s": repeat_times},
    }


def raw_computations(engine: Engine) -> None:
    """What the verdict computes, as bare library calls: read testing and production with their
    predictions, then per feature Evidently's Cramér-von Mises and Wasserstein, Benjamini-Hochberg,
    two Fisher's exact tests, a chi-square test and Newcombe's interval."""
    from evidently.legacy.calculations.stattests import cramer_von_mises, wasserstein_stat_test
    from evidently.legacy.core import ColumnType
    from scipy.stats import chi2_contingency, false_discovery_control, fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    from mlops.kernel.datasets import read_set

    with engine.connect() as connection:
        reference, current = (read_set(connection, name, with_predictions=True) for name in ("testing", "production"))
    p_values = []
    for feature in FEATURES:
        ref, cur = reference.features[feature].dropna(), current.features[feature].dropna()
        p_values.append(cramer_von_mises(ref, cur, ColumnType.Numerical, 0.05).drift_score)
        wasserstein_stat_test(ref, cur, ColumnType.Numerical, 0.1)
    false_discovery_control(p_values)
    ref_missing = int(reference.features.isna().any(axis=1).sum())
    cur_missing = int(current.features.isna().any(axis=1).sum())
    fisher_exact(
        [[cur_missing, len(current.target) - cur_missing], [ref_missing, len(reference.target) - ref_missing]],
        alternative="greater",
    )
    counts = [np.bincount(s.prediction, minlength=3) for s in (reference, current)]
    chi2_contingency(np.array(counts)[:, np.array(counts).sum(axis=0) > 0])
    ref_right = int((reference.prediction == reference.target).sum())
    cur_right = int((current.prediction == current.target).sum())
    n_ref, n_cur = len(reference.target), len(current.target)
    fisher_exact([[n_cur - cur_right, cur_right], [n_ref - ref_right, ref_right]], alternative="greater")
    confint_proportions_2indep(cur_right, n_cur, ref_right, n_ref, method="newcomb", compare="diff")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Detection against shift size, at 36 and 360 rows, for each reference (with the 95 % intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    styles = {
        ("testing", 36): "o-",
        ("testing", 360): "s-",
        ("training+testing", 36): "o--",
        ("training+testing", 360): "s--",
    }
    for (reference, size), style in styles.items():
        points = sorted(
            (0.0 if row["clean"] else row["shift"], row)
            for row in rows
            if row["reference"] == reference and row["size"] == size and (row["clean"] or row["shift"] is not None)
        )
        if not points:
            continue
        shifts = [shift for shift, _ in points]
        advised = np.array([row["advised"] for _, row in points])
        errors = np.array(
            [[row["advised"] - row["interval"][0], row["interval"][1] - row["advised"]] for _, row in points]
        ).T
        axes.errorbar(
            shifts, 100 * advised, yerr=100 * errors, fmt=style, capsize=3, label=f"{size} rows, reference {reference}"
        )
    axes.axhline(95, color="grey", linewidth=0.8, linestyle=":")
    axes.axhline(5, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel(f"mean shift of {SHIFTED_FEATURES} random features (sd)")
    axes.set_ylabel("batches where re-training is advised (%)")
    axes.set_ylim(-2, 102)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("Re-training verdict: detection against shift size (0 = clean)")
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
