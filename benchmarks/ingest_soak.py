"""The ingest bridge for a long while at a steady message rate: lag, throughput and memory, minute
by minute, with the first minute as the baseline of the same run.

    .venv/bin/python benchmarks/ingest_soak.py [--minutes 10] [--kits 20] [--rate 20]

It starts its own moto_server (DynamoDB), mosquitto with mutual TLS and the ingest bridge as a
process (`manage.py ingest`), with a fresh SQLite database under var/bench/soak/. `--kits` kits,
each with its own certificate, publish one message of four sensors in turn (QoS 1), `--rate`
messages a second in all, for `--minutes`; then the bridge is given up to a minute to catch up.

- lag: from a message's publication to the bridge's report that it is stored (the bridge reports
  its count after every batch it stores, so a lag is exact to the batch);
- throughput: messages published and stored per second, each minute;
- memory: the bridge process's resident set size (VmRSS), each minute, and moto_server's;
- stalls: gaps of more than a second between the bridge's reports, and a probe that times one
  GetItem on the local DynamoDB every half second from this process, so that a stall of the
  local DynamoDB (moto_server keeps every item as Python objects) is told apart from one of the
  bridge.

Ratios compare the last minute with the first: a bridge that keeps up stays near 1.0 in lag and
throughput, and its memory does not keep growing.
"""

import argparse
import bisect
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_world import bridge_environment, local_product_prepare  # noqa: E402 (the path above first)
from localdev.moto import MotoServer  # noqa: E402

REPORT = re.compile(r"^(\S+ \S+) INFO telemetry\.ingest: Ingest: (\d+) messages: (\d+) readings stored", re.M)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Publisher:
    """Publishes kit messages at a steady rate, round-robin over the kits, recording when each was
    sent (the n-th message published is the n-th the bridge can store)."""

    def __init__(self, clients: list[tuple[str, object]], rate: float):
        self.clients = clients
        self.rate = rate
        self.sent_at: list[float] = []
        self.sequence = {kit_id: 0 for kit_id, _ in clients}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.began = time.time()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            due = self.began + number / self.rate
            pause = due - time.time()
            if pause > 0 and self.stopping.wait(pause):
                return
            kit_id, client = self.clients[number % len(self.clients)]
            self.sequence[kit_id] += 1
            now = datetime.now(UTC)
            payload = (
                f'{{"schema_version":1,"kit_id":"{kit_id}",'
                f'"timestamp":"{now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}Z","sequence":{self.sequence[kit_id]},'
                '"readings":{"temperature":21.5,"humidity":55.0,"co2":420.0,"light":1200.0}}'
            )
            self.sent_at.append(time.time())
            client.publish(f"astroplant/kits/astroplant-{kit_id}/measurements", payload, qos=1)
            number += 1


class DynamoProbe:
    """Times one GetItem on the local DynamoDB every half second, beside the bridge."""

    def __init__(self, table: str):
        import boto3

        self.client = boto3.client("dynamodb")
        self.table = table
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            began = time.time()
            self.client.get_item(TableName=self.table, Key={"k": {"S": "soak-kit-0"}})
            self.samples.append((began, (time.time() - began) * 1000))


def stored_timeline(log_path: Path) -> list[tuple[float, int]]:
    """(time, readings stored so far) from the bridge's progress reports."""
    timeline = []
    for stamp, _messages, stored in REPORT.findall(log_path.read_text()):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
        timeline.append((at, int(stored)))
    return timeline


def lags(sent_at: list[float], timeline: list[tuple[float, int]]) -> list[tuple[float, float]]:
    """(publication time, lag) of every message the bridge reported stored."""
    result = []
    counts = [count for _, count in timeline]
    for index, published in enumerate(sent_at):
        report = bisect.bisect_left(counts, index + 1)
        if report < len(timeline):
            result.append((published, timeline[report][0] - published))
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--kits", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20, help="messages per second, all kits together")
    arguments = parser.parse_args()
    work = ROOT / "var" / "bench" / "soak"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    with MotoServer() as moto:
        kit_ids = local_product_prepare(moto=moto, work=work, prefix="soak", kit_count=arguments.kits)
        import paho.mqtt.client as mqtt

        from kits.certificates import project_authority
        from localdev.mosquitto import MosquittoBroker

        with MosquittoBroker(authority=project_authority(), directory=work / "mosquitto") as broker:
            env = bridge_environment(broker)
            log_path = work / "ingest.log"
            with open(log_path, "w") as log:
                bridge = subprocess.Popen(
                    [sys.executable, "manage.py", "ingest", "--report-every", "0.01"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                while "subscribed to" not in log_path.read_text():
                    if bridge.poll() is not None:
                        sys.exit(f"The bridge stopped: see {log_path}")
                    time.sleep(0.1)
                clients = []
                for kit_id in kit_ids:
                    files = broker.client_credentials(f"astroplant-{kit_id}")
                    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"astroplant-{kit_id}")
                    client.tls_set(str(files.root_ca), str(files.certificate), str(files.private_key))
                    client.max_inflight_messages_set(100)
                    client.connect("localhost", broker.port)
                    client.loop_start()
                    clients.append((kit_id, client))

                memory = [(0.0, rss_mb(bridge.pid))]
                moto_memory = [(0.0, rss_mb(moto.process.pid))]
                probe = DynamoProbe("soak-telemetry-latest")
                probe.thread.start()
                publisher = Publisher(clients, arguments.rate)
                print(
                    f"{arguments.kits} kits publish {arguments.rate:g} messages/s for {arguments.minutes:g} min; "
                    f"bridge pid {bridge.pid}, {memory[0][1]:.1f} MB",
                    flush=True,
                )
                publisher.start()
                duration = arguments.minutes * 60
                minute = 1
                while time.time() - publisher.began < duration:
                    time.sleep(min(60 * minute, duration) - (time.time() - publisher.began))
                    elapsed = time.time() - publisher.began
                    memory.append((elapsed, rss_mb(bridge.pid)))
                    moto_memory.append((elapsed, rss_mb(moto.process.pid)))
                    timeline = stored_timeline(log_path)
                    stored = timeline[-1][1] if timeline else 0
                    print(
                        f"  {elapsed / 60:4.1f} min: {len(publisher.sent_at)} published, {stored} stored, "
                        f"bridge {memory[-1][1]:.1f} MB, moto_server {moto_memory[-1][1]:.0f} MB",
                        flush=True,
                    )
                    minute += 1
                publisher.stop()
                total = len(publisher.sent_at)
                deadline = time.time() + 60
                while time.time() < deadline:
                    timeline = stored_timeline(log_path)
                    if timeline and timeline[-1][1] >= total:
                        break
                    time.sleep(0.5)
                memory.append((time.time() - publisher.began, rss_mb(bridge.pid)))
                probe.stopping.set()
                for _, client in clients:
                    client.disconnect()
                    client.loop_stop()
            finally:
                bridge.terminate()
                bridge.wait(timeout=30)
        report(publisher, log_path, memory, duration)
        stalls_report(publisher.began, stored_timeline(log_path), probe.samples, moto_memory)


def report(publisher: Publisher, log_path: Path, memory: list[tuple[float, float]], duration: float) -> None:
    timeline = stored_timeline(log_path)
    stored = timeline[-1][1] if timeline else 0
    measured = lags(publisher.sent_at, timeline)
    began = publisher.began
    last_start = max(0.0, duration - 60)

    def minute_of(start: float, end: float) -> dict:
        window = [lag for published, lag in measured if start <= published - began < end]
        published = sum(1 for at in publisher.sent_at if start <= at - began < end)
        reports = [(at, count) for at, count in timeline if start <= at - began < end]
        stored_rate = (
            (reports[-1][1] - reports[0][1]) / (reports[-1][0] - reports[0][0]) if len(reports) > 1 else float("nan")
        )
        return {
            "published": published / (end - start),
            "stored": stored_rate,
            "p50": percentile(window, 0.5) * 1000,
            "p99": percentile(window, 0.99) * 1000,
            "max": max(window, default=float("nan")) * 1000,
        }

    first, last = minute_of(0, min(60, duration)), minute_of(last_start, duration)
    whole = [lag for _, lag in measured]
    total = len(publisher.sent_at)
    print()
    print(f"{total} messages published over {duration / 60:g} min, {stored} stored ({stored / total:.4f})")
    print(f"{'':34} {'first minute':>13} {'last minute':>13} {'ratio':>6}")
    for label, key, unit in (
        ("published", "published", "msg/s"),
        ("stored", "stored", "msg/s"),
        ("lag p50", "p50", "ms"),
        ("lag p99", "p99", "ms"),
        ("lag max", "max", "ms"),
    ):
        print(f"{label + ' (' + unit + ')':34} {first[key]:13.1f} {last[key]:13.1f} {last[key] / first[key]:6.2f}")
    start_mb, end_mb = memory[1][1] if len(memory) > 2 else memory[0][1], memory[-1][1]
    print(f"{'bridge memory after 1 min / end (MB)':34} {start_mb:13.1f} {end_mb:13.1f} {end_mb / start_mb:6.2f}")
    print(
        f"whole run: lag p50 {percentile(whole, 0.5) * 1000:.0f} ms, p99 {percentile(whole, 0.99) * 1000:.0f} ms, "
        f"max {max(whole, default=float('nan')) * 1000:.0f} ms; bridge memory at start {memory[0][1]:.1f} MB, "
        f"max {max(mb for _, mb in memory):.1f} MB (median {statistics.median(mb for _, mb in memory):.1f})"
    )


def stalls_report(began: float, timeline, probe_samples, moto_memory) -> None:
    """When the bridge went quiet for over a second, and how long the local DynamoDB took to
    answer the probe around then."""
    print()
    print(f"moto_server memory: {moto_memory[0][1]:.0f} MB at start, {moto_memory[-1][1]:.0f} MB at the end")
    probes = [ms for _, ms in probe_samples]
    print(f"DynamoDB probe (GetItem every 0.5 s): p50 {percentile(probes, 0.5):.1f} ms, max {max(probes):.0f} ms")
    print("bridge reports more than 1 s apart (a stall), with the slowest probe begun within it:")
    for (before, _), (after, _) in zip(timeline, timeline[1:], strict=False):
        if after - before > 1.0:
            during = [ms for at, ms in probe_samples if before - 0.5 <= at <= after]
            print(
                f"  at {before - began:6.1f} s: {after - before:4.2f} s without a report; "
                f"slowest probe then {max(during, default=float('nan')):.0f} ms"
            )


if __name__ == "__main__":
    main()
