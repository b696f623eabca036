"""Run the benchmarks: `python -m bench` runs all of them, `python -m bench p4 p5` some.

`--quick` runs each in a tiny configuration in seconds (the smoke test's), whose figures mean
nothing about the goals.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import traceback
from pathlib import Path

from bench.harness import Config, describe_machine, machine, save, say

BENCHMARKS = {
    "p1": ("bench.p1_tracking", "tracking overhead: the walkthrough's optimization vs bare GridSearchCV"),
    "p2": ("bench.p2_predict", "online prediction vs MLServer 1.7 and `mlflow models serve`"),
    "p3": ("bench.p3_monitoring", "monitoring report vs raw Evidently; repeat on unchanged data"),
    "p4": ("bench.p4_scale", "scale: load / evaluate / report 10k..1M rows on PostgreSQL"),
    "p5": ("bench.p5_cold_start", "cold start: `mlops up` to four ready services and the first experiment list"),
    "monitoring_quality": (
        "bench.monitoring_quality",
        "re-training verdict: false-alarm and detection rates per fault scenario; verdict time",
    ),
    "p6": ("bench.p6_dask", "grid search on a 2-process Dask cluster vs local threads, same cores"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default); exit 1 if one of them failed to run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="NAME",
        help=f"which ({', '.join(BENCHMARKS)}); all if none",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny configuration: checks that the benchmarks run, measures nothing"
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the services with py-spy during the measured phases"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp"), help="where temporary data dirs go")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    config = Config(quick=args.quick, work_dir=args.work_dir, profile=args.profile)
    info = machine()
    command = shlex.join([Path(sys.executable).name, "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    say(describe_machine(info))
    failed = []
    goal_lines = []
    for name in names:
        module, title = BENCHMARKS[name]
        say(f"\n=== {name}: {title}")
        try:
            result = importlib.import_module(module).run(config)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        if not config.quick:
            save(result, info, command)
        goal_lines.append(result.goal_line())
        say(goal_lines[-1])
    if len(names) > 1:
        say("\n" + "\n".join(goal_lines))
    if failed:
        say(f"\nfailed to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
