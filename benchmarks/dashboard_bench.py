"""Dashboard benchmark: time from navigation to all charts drawn on a kit page.

    .venv/bin/python benchmarks/dashboard_bench.py [--days 365] [--runs 5]

Against real local parts: a moto_server process for DynamoDB, Django's server in a subprocess,
and Debian's headless Chromium driven by Playwright. Two kits with four sensors each get one-minute
history written through the telemetry service (`manage.py telemetry_seed`): the baseline kit one
day of it, the measured kit `--days` (a year by default). Each kit page is opened `--runs` times
per range preset; the time is what the page itself records (`performance.now()` when the last
chart has drawn, counted from navigation start). Figures print as medians and as ratios against
the baseline, the baseline kit's page showing its last day, measured in the same run before the
long history is written. Beside each total: the part spent waiting for the data API, and the
rest (page, script, drawing), which is the dashboard's own.

moto_server answers every DynamoDB Query by looking at every item of the table, so once a year of
raw readings is stored, every raw-range read costs seconds there (AWS reads only the partition).
Writing a year of history is the slow part (several minutes); its time is printed too.

The last line of the output is one JSON object of the figures: `days`, `runs`; the baseline's
`baseline_ms` (median), `baseline_api_ms`, `baseline_own_ms`; for each range preset P of the
measured kit (hour, day, week, month, year) `P_ms`, `P_ratio` (over the baseline), `P_api_ms`,
`P_own_ms`, `P_resolution`, `P_points`; the same for `baseline_again_` (the baseline kit beside
that history); and the writing: `history_readings`, `history_write_s`, `history_readings_per_s`,
`baseline_write_s`.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402
from localdev.moto import MotoServer  # noqa: E402
from localdev.ports import free_port, wait_for_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PRESETS = ["hour", "day", "week", "month", "year"]
USERNAME, PASSWORD = "bench-grower", "bench-grower-password"


@dataclass
class PageTimes:
    label: str
    drawn_ms: list[float]  # navigation start to the last chart drawn, one per page load
    api_ms: list[float]  # of which waiting for the data API (GET /kits/{id}/data), per load
    resolution: str  # what `auto` chose for the range
    points: int  # points drawn in the fullest chart

    @property
    def median(self) -> float:
        return statistics.median(self.drawn_ms)

    @property
    def api_median(self) -> float:
        return statistics.median(self.api_ms)

    @property
    def own_median(self) -> float:
        return statistics.median(d - a for d, a in zip(self.drawn_ms, self.api_ms, strict=True))


def say(message: str) -> None:
    print(message, flush=True)


SENSORS = [
    ("temperature", "temperature", "°C", -10, 50),
    ("humidity", "humidity", "%", 0, 100),
    ("co2", "co2", "ppm", 200, 5000),
    ("light", "light", "lux", 0, 100000),
]


def prepare(env: dict) -> None:
    """The database, the telemetry tables, the grower and both kits (no history yet)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from kits import memberships, registry
    from kits.models import Role
    from kits.registry import SensorSpec

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)  # the API's throttle counts
    call_command("dynamodb_setup", verbosity=0)
    get_user_model().objects.create_user(USERNAME, "bench@example.org", PASSWORD)
    for kit_id in ("bench-baseline", "bench-history"):
        kit = registry.kit_register(id=kit_id, name=kit_id, sensors=[SensorSpec(*spec) for spec in SENSORS])
        memberships.membership_add(kit=kit, username=USERNAME, role=Role.VIEWER)


def seed(kit_id: str, days: float) -> float:
    """Writes `days` of one-minute history through `manage.py telemetry_seed`; returns seconds."""
    from django.core.management import call_command

    say(f"Writing {days:g} days of one-minute readings for {kit_id} (manage.py telemetry_seed)...")
    started = time.monotonic()
    call_command("telemetry_seed", kit=kit_id, days=days, interval=60)
    return time.monotonic() - started


def sign_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def measure(page, kit_id: str, preset: str, runs: int, label: str) -> PageTimes:
    """Opens the kit page `runs` times and reads what the page recorded."""
    drawn, api = [], []
    for _ in range(runs):
        page.goto(f"/dashboard/kits/{kit_id}/?range={preset}", wait_until="commit")
        page.wait_for_function(
            "() => { const c = document.getElementById('charts');"
            " return c && c.dataset.state === 'drawn' && c.dataset.drawnAtMs; }"
        )
        drawn.append(float(page.get_attribute("#charts", "data-drawn-at-ms")))
        api.append(
            page.evaluate(
                "performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/data?')).reduce((sum, e) => sum + e.duration, 0)"
            )
        )
    points = page.eval_on_selector_all("#charts figure", "fs => fs.map(f => Number(f.dataset.pointCount))")
    times = PageTimes(label, drawn, api, page.get_attribute("#charts", "data-resolution"), max(points))
    say(f"  {label}: {times.median:.0f} ms")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=365, help="days of history of the measured kit (default 365)")
    parser.add_argument("--runs", type=int, default=5, help="page loads per case (default 5)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("Needs Debian's Chromium: apt-get install -y chromium")
    if not (ROOT / "static" / "vendor" / "uplot" / "uPlot.iife.min.js").exists():
        sys.exit("The chart library is missing: run `make static` first")
    from playwright.sync_api import sync_playwright

    moto = MotoServer().start()
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as work:
            env = {
                **moto.client_env(),
                "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.local",
                # Django's server hands out the static files itself only with DEBUG on.
                "DJANGO_DEBUG": "true",
                "DATABASE_URL": f"sqlite:///{work}/bench.sqlite3",
                "DYNAMODB_TABLE_PREFIX": f"bench-{uuid.uuid4().hex[:8]}-",
                "LOG_LEVEL": "WARNING",
                # The API's request rates counted as in production, never reached by the benchmark.
                **{f"API_THROTTLE_{scope}_RATE": "100000/second" for scope in ("ANON", "USER", "DATA", "DATA_CSV")},
            }
            prepare(env)
            # Seeding runs the ORM while Playwright's sync API has an event loop in this thread,
            # which Django would take for async code; the calls here are plain synchronous ones.
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            port = free_port()
            server = subprocess.Popen(  # noqa: S603 (our own manage.py, fixed arguments)
                [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port(port)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(
                    base_url=f"http://127.0.0.1:{port}", viewport={"width": 1280, "height": 900}
                )
                context.set_default_timeout(180_000)
                page = context.new_page()
                sign_in(page)

                baseline_seconds = seed("bench-baseline", 1)
                say(f"Opening the kit pages {args.runs} times per case in headless Chromium...")
                measure(page, "bench-baseline", "day", args.runs, "warm-up")
                baseline = measure(page, "bench-baseline", "day", args.runs, "baseline: 1 day of history, last day")

                history_seconds = seed("bench-history", args.days)
                cases = [
                    measure(page, "bench-history", preset, args.runs, f"{args.days:g} days of history, last {preset}")
                    for preset in PRESETS
                ]
                cases.append(
                    measure(page, "bench-baseline", "day", args.runs, "baseline kit again, beside that history")
                )
                browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        moto.process.terminate()
        try:
            moto.process.wait(timeout=60)  # a big store takes a while to let go of
        except subprocess.TimeoutExpired:
            moto.process.kill()

    readings = args.days * 1440
    say("")
    say("Writing one-minute history of 4 sensors through the telemetry service into moto_server:")
    say(f"  {readings:,.0f} readings in {history_seconds:.0f} s, {readings / history_seconds:,.0f} readings/s")
    say(f"  (baseline kit, 1,440 readings: {baseline_seconds:.1f} s)")
    say("")
    say(f"Navigation to all four charts drawn, median of {args.runs} loads, ms:")
    say(f"  {'case':<46} {'total':>7} {'ratio':>6} {'API':>7} {'own':>5}  resolution, points per chart")
    for times in [baseline, *cases]:
        say(
            f"  {times.label:<46} {times.median:7.0f} {times.median / baseline.median:6.2f}"
            f" {times.api_median:7.0f} {times.own_median:5.0f}  {times.resolution}, {times.points}"
        )
    say("  (API: waiting for GET /kits/{id}/data; own: the rest, page and script and drawing)")
    figures = {
        "days": args.days,
        "runs": args.runs,
        "baseline_ms": baseline.median,
        "baseline_api_ms": baseline.api_median,
        "baseline_own_ms": baseline.own_median,
    }
    for name, times in [*zip(PRESETS, cases, strict=False), ("baseline_again", cases[-1])]:
        figures.update(
            {
                f"{name}_ms": times.median,
                f"{name}_ratio": times.median / baseline.median,
                f"{name}_api_ms": times.api_median,
                f"{name}_own_ms": times.own_median,
                f"{name}_resolution": times.resolution,
                f"{name}_points": times.points,
            }
        )
    figures.update(
        history_readings=round(readings),
        history_write_s=history_seconds,
        history_readings_per_s=readings / history_seconds,
        baseline_write_s=baseline_seconds,
    )
    figures_print(figures)


if __name__ == "__main__":
    main()
