"""The memory of every service process, phase by phase, as `bench p4` runs them (the walkthrough's
sets, then load / evaluate / report on growing production sets): where the summed RSS goes.

For each phase, each process's peak RSS (VmHWM, reset before the phase) and, sampled every 0.2 s,
its peak anonymous and file-backed RSS, PSS and private dirty memory, in MB; then their sums
(docs/performance.md, P4). Run: .venv/bin/python -m bench.micro.memory_by_process [rows ...]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import bench_settings, call, group_pids, memory_bytes, postgres_database, reset_peak_rss, services
from bench.p4_scale import walk_through_small_sets

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
# /proc's names of the figures printed, and the names they are printed under
FIELDS = {"VmHWM": "rss", "RssAnon": "anon", "RssFile": "file", "Pss": "pss", "Private_Dirty": "private"}


def memory_mb(pid: int) -> dict[str, int]:
    """One process's memory now (its peak RSS since the last reset under "rss"), in MB."""
    return {FIELDS[name]: value // 2**20 for name, value in memory_bytes(pid, tuple(FIELDS)).items()}


def phase(name: str, leaders: dict[int, str], action: Callable[[], object]) -> None:
    """Run action; print each process's peaks meanwhile and their sums."""
    reset_peak_rss(list(leaders))
    peaks: dict[tuple[str, int], dict[str, int]] = {}
    done = threading.Event()

    def sample() -> None:
        while True:
            for leader, service in leaders.items():
                for pid in group_pids(leader):
                    kept = peaks.setdefault((service, pid), {})
                    for field, mb in memory_mb(pid).items():
                        kept[field] = max(kept.get(field, 0), mb)
            if done.wait(0.2):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    print(f"== {name}: {seconds:.1f} s")
    totals: dict[str, int] = {}
    for (service, pid), kept in sorted(peaks.items()):
        print(f"  {service:<10} {pid:>7}  " + "  ".join(f"{field} {mb:>4}" for field, mb in kept.items()))
        for field, mb in kept.items():
            totals[field] = totals.get(field, 0) + mb
    print(f"  {'sum':<18}  " + "  ".join(f"{field} {mb:>4}" for field, mb in totals.items()), flush=True)


def main(sizes: list[int]) -> None:
    with postgres_database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = bench_settings(Path(data_dir), dataset_db_url=url)
        with services(settings, ["simulator", "ml", "monitoring"]) as running:
            simulator, ml, monitoring = (running[name].url for name in ("simulator", "ml", "monitoring"))
            leaders = {service.process.pid: name for name, service in running.items()}

            phase("started", leaders, lambda: time.sleep(0.5))
            phase(
                "the walkthrough's sets: load, train, evaluate, report",
                leaders,
                lambda: walk_through_small_sets(simulator, ml, monitoring),
            )
            for rows in sizes:
                load = {"set_name": "production", "size": rows}
                phase(
                    f"load {rows:,}", leaders, lambda load=load: call("POST", simulator + "/root/simulator", json=load)
                )
                phase(
                    f"evaluate {rows:,}", leaders, lambda: call("POST", ml + "/root/ml", json={"dataset": "production"})
                )
                phase(
                    f"report {rows:,}",
                    leaders,
                    lambda: call("POST", monitoring + "/root/monitoring", json={"metric": "report"}),
                )
                phase(f"idle after {rows:,}", leaders, lambda: time.sleep(0.5))


if __name__ == "__main__":
    main([int(rows) for rows in sys.argv[1:]] or list(SIZES))
