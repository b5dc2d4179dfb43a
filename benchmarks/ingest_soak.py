"""The ingest bridge for a long while at a steady message rate: lag, throughput and memory, minute
by minute, with the first minute as the baseline of the same run.

    .venv/bin/python benchmarks/ingest_soak.py [--minutes 10] [--kits 20] [--rate 20] [--poison-every 0]

It starts its own moto_server (DynamoDB), mosquitto with mutual TLS and the ingest bridge as a
process (`manage.py ingest`), with a fresh SQLite database under var/bench/soak/. `--kits` kits,
each with its own certificate, publish one message of four sensors in turn (QoS 1), `--rate`
messages a second in all, for `--minutes` (fractions too: 0.5 is half a minute); then the bridge
is given up to a minute to catch up.

With `--poison-every SECONDS`, one more kit (its own certificate, registered like the others)
publishes every that many seconds a measurement whose one reading is {"temperature": 1e-200}:
valid JSON, but a number DynamoDB refuses (underflow), which the bridge must keep as a dead
letter without holding up the other kits. Lag and counts are over the other kits' messages.

- lag: from a message's publication to the bridge's report that it is stored (the bridge reports
  its count after every batch it stores, so a lag is exact to the batch). The n-th message of the
  normal kits is taken to be stored when the bridge's stored count reaches n: dead letters are
  not in that count, so poison messages are left out of both sides;
- throughput: messages published and stored per second, each minute;
- memory: the bridge process's resident set size (VmRSS), each minute, and moto_server's;
- stalls: gaps of more than a second between the bridge's reports, and a probe that times one
  GetItem on the local DynamoDB (a one-item table of its own) every half second from this
  process, so that a stall of the local DynamoDB (moto_server keeps every item as Python
  objects) is told apart from one of the bridge;
- write units: the DynamoDB write units the bridge says it has written (its progress line ends
  with ", N write units" where the bridge counts them), per stored message and per reading (one
  sensor value, four per message, as in telemetry_bench.py).

Ratios compare the last minute with the first: a bridge that keeps up stays near 1.0 in lag and
throughput, and its memory does not keep growing.

The last line of the output is one JSON object of the figures: `minutes`, `kits`, `rate_msg_per_s`,
`poison_every_s`; counts `published`, `stored` (normal kits' messages), `poison_published`,
`dead_letters`, `messages_received` (all, as the bridge counts them); `published_msg_per_s`,
`stored_msg_per_s` (whole run) and `*_first_min`/`*_last_min` of `published_msg_per_s`,
`stored_msg_per_s`, `lag_p50_ms`, `lag_p99_ms`, `lag_max_ms`, with their `*_last_over_first`
ratios; whole-run `lag_p50_ms`, `lag_p99_ms`, `lag_max_ms`; `bridge_mb_start`,
`bridge_mb_after_1_min`, `bridge_mb_end`, `bridge_mb_max`, `moto_mb_start`, `moto_mb_end`;
`probe_p50_ms`, `probe_max_ms`, `stalls`, `stall_max_s`; `write_units`,
`write_units_per_message`, `write_units_per_reading` (null where the bridge does not report write
units). null stands for a figure the run could not measure.
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

from benchmarks.figures import figures_print  # noqa: E402 (the path above first)
from benchmarks.ingest_world import bridge_environment, local_product_prepare  # noqa: E402
from localdev.moto import MotoServer  # noqa: E402

SENSORS_PER_MESSAGE = 4
# The bridge's progress line: "Ingest: {messages} messages: {stored} readings stored ({unchanged}
# already stored), {statuses} statuses, {dead letters} dead letters[, {units} write units]", and
# "Ingest stopped: ..." with the same counts when it stops. The parts after "stored" are read one
# by one, so a line without one of them still gives the others.
REPORT = re.compile(r"^(\S+ \S+) INFO telemetry\.ingest: Ingest: (\d+) messages: (\d+) readings stored", re.M)
PROGRESS = re.compile(
    r"^(\S+ \S+ INFO telemetry\.ingest: Ingest(?: stopped)?: (\d+) messages: (\d+) readings stored.*)$", re.M
)
DEAD_LETTERS = re.compile(r"(\d+) dead letters")
WRITE_UNITS = re.compile(r"(\d+) write units")
MEASUREMENT = (
    '{{"schema_version":1,"kit_id":"{kit_id}","timestamp":"{timestamp}","sequence":{sequence},"readings":{readings}}}'
)
NORMAL_READINGS = '{"temperature":21.5,"humidity":55.0,"co2":420.0,"light":1200.0}'
POISON_READINGS = '{"temperature":1e-200}'  # valid JSON; DynamoDB refuses it (number underflow)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measurement(kit_id: str, sequence: int, readings: str) -> str:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return MEASUREMENT.format(kit_id=kit_id, timestamp=timestamp, sequence=sequence, readings=readings)


class Publisher:
    """Publishes kit messages at a steady rate, round-robin over the kits, recording when each was
    sent (the n-th message published is the n-th the bridge can store). With a poison kit, that
    kit publishes its poison message every `poison_every` seconds from a thread of its own; those
    are counted apart (`poison_sent`) and are not in `sent_at`."""

    def __init__(self, clients: list[tuple[str, object]], rate: float, poison=None, poison_every: float = 0):
        self.clients = clients
        self.rate = rate
        self.poison = poison  # (kit id, client) or None
        self.poison_every = poison_every
        self.sent_at: list[float] = []
        self.poison_sent = 0
        self.sequence = {kit_id: 0 for kit_id, _ in clients}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.poison_thread = threading.Thread(target=self._run_poison, daemon=True)

    def start(self) -> None:
        self.began = time.time()
        self.thread.start()
        if self.poison and self.poison_every > 0:
            self.poison_thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        if self.poison_thread.is_alive():
            self.poison_thread.join()

    def _run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            due = self.began + number / self.rate
            pause = due - time.time()
            if pause > 0 and self.stopping.wait(pause):
                return
            kit_id, client = self.clients[number % len(self.clients)]
            self.sequence[kit_id] += 1
            payload = measurement(kit_id, self.sequence[kit_id], NORMAL_READINGS)
            self.sent_at.append(time.time())
            client.publish(f"astroplant/kits/astroplant-{kit_id}/measurements", payload, qos=1)
            number += 1

    def _run_poison(self) -> None:
        kit_id, client = self.poison
        number = 1
        while not self.stopping.wait(max(0.0, self.began + number * self.poison_every - time.time())):
            client.publish(
                f"astroplant/kits/astroplant-{kit_id}/measurements",
                measurement(kit_id, number, POISON_READINGS),
                qos=1,
            )
            self.poison_sent += 1
            number += 1


class DynamoProbe:
    """Times one GetItem on the local DynamoDB every half second, beside the bridge, on a one-item
    table of its own (so the probe does not depend on where telemetry keeps what)."""

    TABLE = "soak-probe"

    def __init__(self):
        import boto3

        self.client = boto3.client("dynamodb")
        self.client.create_table(
            TableName=self.TABLE,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.put_item(TableName=self.TABLE, Item={"k": {"S": "probe"}, "v": {"N": "1"}})
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            began = time.time()
            self.client.get_item(TableName=self.TABLE, Key={"k": {"S": "probe"}})
            self.samples.append((began, (time.time() - began) * 1000))


def stored_timeline(log_path: Path) -> list[tuple[float, int]]:
    """(time, readings stored so far) from the bridge's progress reports."""
    timeline = []
    for stamp, _messages, stored in REPORT.findall(log_path.read_text()):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
        timeline.append((at, int(stored)))
    return timeline


def bridge_totals(log_path: Path) -> dict:
    """The counts of the bridge's last progress line (its "stopped" line if it has one):
    messages, stored, dead_letters and write_units, each None where the line does not say."""
    lines = PROGRESS.findall(log_path.read_text())
    if not lines:
        return {"messages": None, "stored": None, "dead_letters": None, "write_units": None}
    line, messages, stored = lines[-1]
    dead_letters, units = DEAD_LETTERS.search(line), WRITE_UNITS.search(line)
    return {
        "messages": int(messages),
        "stored": int(stored),
        "dead_letters": int(dead_letters.group(1)) if dead_letters else None,
        "write_units": int(units.group(1)) if units else None,
    }


def lags(sent_at: list[float], timeline: list[tuple[float, int]]) -> list[tuple[float, float]]:
    """(publication time, lag) of every message the bridge reported stored."""
    result = []
    counts = [count for _, count in timeline]
    for index, published in enumerate(sent_at):
        report = bisect.bisect_left(counts, index + 1)
        if report < len(timeline):
            result.append((published, timeline[report][0] - published))
    return result


def stored_rate(timeline: list[tuple[float, int]], began: float) -> float:
    """Messages stored per second, from the start of publishing to the report that first gave
    the final count (the bridge goes on reporting while idle)."""
    if not timeline or not timeline[-1][1]:
        return float("nan")
    done_at = next(at for at, count in timeline if count >= timeline[-1][1])
    return timeline[-1][1] / (done_at - began) if done_at > began else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="fractions too: 0.5 is half a minute")
    parser.add_argument("--kits", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20, help="messages per second, all kits together")
    parser.add_argument(
        "--poison-every", type=float, default=0, help="seconds between one more kit's poison messages (0: none)"
    )
    arguments = parser.parse_args()
    if arguments.minutes <= 0 or arguments.kits < 1 or arguments.rate <= 0 or arguments.poison_every < 0:
        parser.error("--minutes, --kits and --rate must be positive, --poison-every not negative")
    poisoning = arguments.poison_every > 0
    work = ROOT / "var" / "bench" / "soak"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    with MotoServer() as moto:
        kit_ids = local_product_prepare(
            moto=moto, work=work, prefix="soak", kit_count=arguments.kits + (1 if poisoning else 0)
        )
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
                poison = clients.pop() if poisoning else None

                memory = [(0.0, rss_mb(bridge.pid))]
                moto_memory = [(0.0, rss_mb(moto.process.pid))]
                probe = DynamoProbe()
                probe.thread.start()
                publisher = Publisher(clients, arguments.rate, poison, arguments.poison_every)
                print(
                    f"{arguments.kits} kits publish {arguments.rate:g} messages/s for {arguments.minutes:g} min; "
                    f"bridge pid {bridge.pid}, {memory[0][1]:.1f} MB",
                    flush=True,
                )
                if poison:
                    print(f"{poison[0]} publishes a poison message every {arguments.poison_every:g} s", flush=True)
                publisher.start()
                duration = arguments.minutes * 60
                minute = 1
                while time.time() - publisher.began < duration:
                    time.sleep(max(0.0, min(60 * minute, duration) - (time.time() - publisher.began)))
                    elapsed = time.time() - publisher.began
                    memory.append((elapsed, rss_mb(bridge.pid)))
                    moto_memory.append((elapsed, rss_mb(moto.process.pid)))
                    timeline = stored_timeline(log_path)
                    stored = timeline[-1][1] if timeline else 0
                    poisoned = f" (and {publisher.poison_sent} poison)" if poison else ""
                    print(
                        f"  {elapsed / 60:4.1f} min: {len(publisher.sent_at)} published{poisoned}, {stored} stored, "
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
                moto_memory.append((time.time() - publisher.began, rss_mb(moto.process.pid)))
                probe.stopping.set()
                probe.thread.join()
                for _, client in clients + ([poison] if poison else []):
                    client.disconnect()
                    client.loop_stop()
            finally:
                bridge.terminate()
                bridge.wait(timeout=30)
        figures = {
            "minutes": arguments.minutes,
            "kits": arguments.kits,
            "rate_msg_per_s": arguments.rate,
            "poison_every_s": arguments.poison_every,
        }
        figures.update(report(publisher, log_path, memory, duration))
        figures.update(stalls_report(publisher.began, stored_timeline(log_path), probe.samples, moto_memory))
    figures_print(figures)


def report(publisher: Publisher, log_path: Path, memory: list[tuple[float, float]], duration: float) -> dict:
    """Prints the lag, throughput, memory and write-unit report; returns its figures."""
    timeline = stored_timeline(log_path)
    totals = bridge_totals(log_path)
    stored = totals["stored"] if totals["stored"] is not None else (timeline[-1][1] if timeline else 0)
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
    figures = {"published": total, "stored": stored}
    print()
    print(f"{total} messages published over {duration / 60:g} min, {stored} stored ({stored / total:.4f})")
    if publisher.poison:
        print(
            f"poison messages published: {publisher.poison_sent}; dead letters the bridge kept: "
            f"{totals['dead_letters'] if totals['dead_letters'] is not None else 'not reported'}"
        )
    print(f"{'':34} {'first minute':>13} {'last minute':>13} {'ratio':>6}")
    for label, key, unit, name in (
        ("published", "published", "msg/s", "published_msg_per_s"),
        ("stored", "stored", "msg/s", "stored_msg_per_s"),
        ("lag p50", "p50", "ms", "lag_p50_ms"),
        ("lag p99", "p99", "ms", "lag_p99_ms"),
        ("lag max", "max", "ms", "lag_max_ms"),
    ):
        ratio = last[key] / first[key] if first[key] else float("nan")
        print(f"{label + ' (' + unit + ')':34} {first[key]:13.1f} {last[key]:13.1f} {ratio:6.2f}")
        figures[f"{name}_first_min"] = first[key]
        figures[f"{name}_last_min"] = last[key]
        figures[f"{name}_last_over_first"] = ratio
    start_mb, end_mb = memory[1][1] if len(memory) > 2 else memory[0][1], memory[-1][1]
    print(f"{'bridge memory after 1 min / end (MB)':34} {start_mb:13.1f} {end_mb:13.1f} {end_mb / start_mb:6.2f}")
    lag_p50, lag_p99 = percentile(whole, 0.5) * 1000, percentile(whole, 0.99) * 1000
    lag_max = max(whole, default=float("nan")) * 1000
    print(
        f"whole run: lag p50 {lag_p50:.0f} ms, p99 {lag_p99:.0f} ms, max {lag_max:.0f} ms; "
        f"bridge memory at start {memory[0][1]:.1f} MB, "
        f"max {max(mb for _, mb in memory):.1f} MB (median {statistics.median(mb for _, mb in memory):.1f})"
    )
    units = totals["write_units"]
    per_message = units / stored if units is not None and stored else None
    per_reading = units / (stored * SENSORS_PER_MESSAGE) if units is not None and stored else None
    if units is None:
        print("write units: the bridge's progress line does not report them")
    else:
        print(
            f"write units: {units} for {stored} stored messages: {per_message:.3f} per message, "
            f"{per_reading:.3f} per reading ({SENSORS_PER_MESSAGE} sensors per message)"
        )
    figures.update(
        {
            "poison_published": publisher.poison_sent,
            "dead_letters": totals["dead_letters"],
            "messages_received": totals["messages"],
            "published_msg_per_s": total / duration,
            "stored_msg_per_s": stored_rate(timeline, began),
            "lag_p50_ms": lag_p50,
            "lag_p99_ms": lag_p99,
            "lag_max_ms": lag_max,
            "bridge_mb_start": memory[0][1],
            "bridge_mb_after_1_min": start_mb,
            "bridge_mb_end": end_mb,
            "bridge_mb_max": max(mb for _, mb in memory),
            "write_units": units,
            "write_units_per_message": per_message,
            "write_units_per_reading": per_reading,
        }
    )
    return figures


def stalls_report(began: float, timeline, probe_samples, moto_memory) -> dict:
    """When the bridge went quiet for over a second, and how long the local DynamoDB took to
    answer the probe around then; returns the figures."""
    print()
    print(f"moto_server memory: {moto_memory[0][1]:.0f} MB at start, {moto_memory[-1][1]:.0f} MB at the end")
    probes = [ms for _, ms in probe_samples]
    print(
        f"DynamoDB probe (GetItem every 0.5 s): p50 {percentile(probes, 0.5):.1f} ms, "
        f"max {max(probes, default=float('nan')):.0f} ms"
    )
    print("bridge reports more than 1 s apart (a stall), with the slowest probe begun within it:")
    gaps = []
    for (before, _), (after, _) in zip(timeline, timeline[1:], strict=False):
        if after - before > 1.0:
            gaps.append(after - before)
            during = [ms for at, ms in probe_samples if before - 0.5 <= at <= after]
            print(
                f"  at {before - began:6.1f} s: {after - before:4.2f} s without a report; "
                f"slowest probe then {max(during, default=float('nan')):.0f} ms"
            )
    if not gaps:
        print("  none")
    return {
        "moto_mb_start": moto_memory[0][1],
        "moto_mb_end": moto_memory[-1][1],
        "probe_p50_ms": percentile(probes, 0.5),
        "probe_max_ms": max(probes, default=float("nan")),
        "stalls": len(gaps),
        "stall_max_s": max(gaps, default=0.0),
    }


if __name__ == "__main__":
    main()
