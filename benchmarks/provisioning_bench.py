"""Time from registering to `active` for many kits at once, through one real Celery worker.

    .venv/bin/python benchmarks/provisioning_bench.py [--kits 50] [--concurrency 1]

Starts its own moto_server and one `celery -A astroplant_site worker` process on Redis (db 7 of
127.0.0.1:6379 unless BENCH_CELERY_BROKER_URL says otherwise), with a fresh SQLite database
under var/bench/. Then:

1. baseline: the same provisioning run in this process, kit after kit, with no Celery at all;
2. Celery: N kits registered in one transaction (so all N tasks are queued at its commit), and
   the time until each is `active`.

The figures are printed as ratios against the baseline measured in the same run. The last line
of the output is one JSON object of them: `kits`, `concurrency`, `baseline_total_s`,
`baseline_ms_per_kit`, `celery_wall_s` (register -> all active), `celery_kits_per_s`,
`celery_over_baseline_ratio` (wall time over the baseline's total), per kit `active_p50_s`,
`active_p95_s`, `active_max_s`, `active_p50_over_baseline_kit_ratio`, and `failed` (null where no
kit became active).
"""

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402 (the path above first)
from localdev.moto import MotoServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=1, help="processes of the one worker")
    arguments = parser.parse_args()

    bench_dir = ROOT / "var" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    database = bench_dir / "bench.sqlite3"
    database.unlink(missing_ok=True)
    with MotoServer() as moto:
        os.environ.update(
            moto.client_env(),
            DJANGO_SETTINGS_MODULE="astroplant_site.settings.local",
            DATABASE_URL=f"sqlite:///{database}",
            CELERY_BROKER_URL=os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/7"),
            PROVISIONING_RETRY_BASE_SECONDS="1",
        )
        import django

        django.setup()
        logging.getLogger("botocore").setLevel(logging.WARNING)
        from django.core.management import call_command

        call_command("migrate", "--no-input", verbosity=0)
        from astroplant_site.celery import app

        with app.connection_for_write() as connection:
            app.control.purge(connection=connection)
        run_id = uuid.uuid4().hex[:6]
        baseline = measure_baseline(arguments.kits, run_id)
        with app.connection_for_write() as connection:
            app.control.purge(connection=connection)  # the baseline's registrations queued tasks too
        worker = start_worker(arguments.concurrency, bench_dir / "worker.log")
        try:
            celery = measure_celery(arguments.kits, run_id)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    figures_print(report(arguments, baseline, celery))


def register(kit_id: str):
    from kits import registry
    from kits.registry import SensorSpec

    return registry.kit_register(
        id=kit_id, name=f"Bench {kit_id}", sensors=[SensorSpec("temperature", "temperature", "°C", -10, 50)]
    )


def measure_baseline(count: int, run_id: str) -> list[float]:
    """Seconds each kit takes to provision in this process, one after another."""
    from kits import provisioning

    print(f"Baseline: provisioning {count} kits in this process, no Celery...", flush=True)
    durations = []
    for index in range(count):
        kit = register(f"base-{run_id}-{index}")
        started = time.perf_counter()
        provisioning.kit_provision(kit_id=kit.id)
        durations.append(time.perf_counter() - started)
        if (index + 1) % 10 == 0:
            print(f"  {index + 1}/{count}", flush=True)
    return durations


def start_worker(concurrency: int, log_file: Path) -> subprocess.Popen:
    print(f"Starting one Celery worker (prefork, concurrency {concurrency})...", flush=True)
    command = [sys.executable, "-m", "celery", "-A", "astroplant_site", "worker", "--loglevel=INFO"]
    command += [f"--concurrency={concurrency}", "--without-gossip", "--without-mingle", "-n", "bench@%h"]
    with open(log_file, "w") as log:
        worker = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 (our own command)
    deadline = time.monotonic() + 60
    while " ready." not in log_file.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            sys.exit(f"The worker did not start; see {log_file}")
        time.sleep(0.1)
    return worker


def measure_celery(count: int, run_id: str) -> dict:
    from django.db import transaction

    from kits.models import Kit, ProvisioningStatus

    print(f"Celery: registering {count} kits in one transaction...", flush=True)
    ids = [f"cel-{run_id}-{index}" for index in range(count)]
    with transaction.atomic():
        for kit_id in ids:
            register(kit_id)
        committed_at = time.time()
    # Each kit's tasks were queued at the commit above; they are active when the status says so.
    deadline = time.monotonic() + 600
    reported = 0
    while True:
        statuses = dict(Kit.objects.filter(pk__in=ids).values_list("id", "provisioning_status"))
        done = sum(status in (ProvisioningStatus.ACTIVE, ProvisioningStatus.FAILED) for status in statuses.values())
        if done // 10 > reported // 10:
            print(f"  {done}/{count} done", flush=True)
        reported = done
        if done == count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    finished_at = time.time()
    rows = Kit.objects.filter(pk__in=ids).values_list("provisioning_status", "provisioning_status_changed_at")
    latencies = [changed.timestamp() - committed_at for status, changed in rows if status == ProvisioningStatus.ACTIVE]
    return {"latencies": sorted(latencies), "failed": count - len(latencies), "wall": finished_at - committed_at}


def report(arguments, baseline: list[float], celery: dict) -> dict:
    """Prints the report; returns its figures."""
    count = arguments.kits
    base_total = sum(baseline)
    base_mean = statistics.mean(baseline)
    latencies = celery["latencies"]
    wall = celery["wall"]

    def quantile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]

    print()
    print(f"Provisioning {count} kits at once with one worker (concurrency {arguments.concurrency}), moto_server")
    print(f"  baseline, in-process, sequential : {base_total:7.2f} s total, {base_mean * 1000:6.1f} ms per kit")
    print(f"  Celery, register -> all active   : {wall:7.2f} s  ({count / wall:5.1f} kits/s)")
    print(f"  Celery vs baseline total time    : {wall / base_total:7.2f} x")
    if latencies:
        print(
            f"  per-kit register -> active       : p50 {quantile(0.5):.2f} s, p95 {quantile(0.95):.2f} s, "
            f"max {latencies[-1]:.2f} s"
        )
        print(f"  p50 latency vs one baseline kit  : {quantile(0.5) / base_mean:7.1f} x")
    print(f"  failed                           : {celery['failed']}")
    return {
        "kits": count,
        "concurrency": arguments.concurrency,
        "baseline_total_s": base_total,
        "baseline_ms_per_kit": base_mean * 1000,
        "celery_wall_s": wall,
        "celery_kits_per_s": count / wall,
        "celery_over_baseline_ratio": wall / base_total,
        "active_p50_s": quantile(0.5) if latencies else None,
        "active_p95_s": quantile(0.95) if latencies else None,
        "active_max_s": latencies[-1] if latencies else None,
        "active_p50_over_baseline_kit_ratio": quantile(0.5) / base_mean if latencies else None,
        "failed": celery["failed"],
    }


if __name__ == "__main__":
    main()
