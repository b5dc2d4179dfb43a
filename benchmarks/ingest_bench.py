"""Ingest benchmark: messages per second from N simulated kits through mosquitto (mutual TLS) and
the ingest bridge (`manage.py ingest`, a real process) into DynamoDB on moto_server, against the
raw write rate of the same DynamoDB process measured in the same run.

    .venv/bin/python benchmarks/ingest_bench.py [--kits 10] [--messages 20000] [--batch-size 2000]

- raw: `batch_write_item` calls of 25 items shaped like raw readings (one per kit message), back
  to back from one thread, before and after the pipeline runs; the mean is the baseline. Also
  shown: the same with 4 calls in flight, as the bridge sends its raw batches (moto takes them
  about a fifth faster).
- live: the kits publish with QoS 1 as fast as the broker acknowledges while the bridge stores;
  the clock stops when the bridge has stored the last reading. On a 2-core machine the kits'
  TLS publishing, mosquitto, the bridge and moto_server all share the CPU.
- backlog: the kits publish while the bridge is away (its persistent session queues them at the
  broker), then the bridge starts and drains them: the bridge's own rate, kits idle. The clock
  starts when the bridge says it is connected and subscribed; its start-up (Python, Django, the
  table check, TLS) is timed apart.
Ratios = messages/s ÷ raw items/s (aim: at least 0.7).

The last line of the output is one JSON object of the figures: `kits`, `messages` (each time),
`batch_size`; `raw_items_per_s` (the baseline, mean of `raw_before_items_per_s` and
`raw_after_items_per_s`), `raw_in_flight_items_per_s`; `live_msg_per_s`, `live_ratio`,
`backlog_msg_per_s`, `backlog_ratio`, and against the raw rate with 4 calls in flight
`live_in_flight_ratio`, `backlog_in_flight_ratio`; `bridge_startup_s`.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402
from benchmarks.ingest_world import bridge_environment, local_product_prepare  # noqa: E402
from localdev.moto import MotoServer  # noqa: E402

STORED = re.compile(r"(\d+) messages: (\d+) readings stored")


def raw_write_rate(client, count: int, table: str, in_flight: int = 1) -> float:
    """Items per second of back-to-back 25-item batch_write_item calls into a scratch table,
    `in_flight` calls at a time."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "t", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "t", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    start_ms = int(time.time() * 1000)
    items = [
        {
            "pk": {"S": f"bench-kit-{n % 10}#2026-11-29"},
            "t": {"N": str(start_ms + n)},
            "v": {"M": {s: {"N": "21.5"} for s in ("temperature", "humidity", "co2", "light")}},
            "x": {"N": str(start_ms // 1000 + 86400)},
        }
        for n in range(count)
    ]
    batches = [[{"PutRequest": {"Item": item}} for item in items[start : start + 25]] for start in range(0, count, 25)]
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        list(pool.map(lambda batch: client.batch_write_item(RequestItems={table: batch}), batches))
    return count / (time.perf_counter() - began)


class Bridge:
    """`manage.py ingest` as a process; `stored()` reads its progress lines."""

    def __init__(self, env: dict, log_path: Path, batch_size: int):
        self.env, self.log_path, self.batch_size, self.process = env, log_path, batch_size, None

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "ingest", "--report-every", "0.02", "--batch-size", str(self.batch_size)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        while "subscribed to" not in self._log():
            time.sleep(0.005)

    def stored(self) -> int:
        found = STORED.findall(self._log())
        return int(found[-1][1]) if found else 0

    def wait_stored(self, total: int, began: float) -> float:
        while self.stored() < total:
            if time.perf_counter() - began > 600:
                sys.exit(f"Only {self.stored()} of {total} readings stored after 600 s; see {self.log_path}")
            time.sleep(0.02)
        return time.perf_counter() - began

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def _log(self) -> str:
        return self.log_path.read_text()[self.offset :]


class Kits:
    """N kits, each publishing over mutual TLS with its own certificate (client id = thing name,
    QoS 1) through `mosquitto_pub` from mosquitto-clients. A load generator in C: ten Python MQTT
    clients took more than a core to publish this fast, which this 2-core machine would take
    from the broker, the bridge and DynamoDB under test. Payloads are built before the clock."""

    def __init__(self, broker, kit_ids):
        self.broker = broker
        self.credentials = {kit_id: broker.client_credentials(f"astroplant-{kit_id}") for kit_id in kit_ids}

    def payloads(self, per_kit: int, start: datetime) -> dict[str, bytes]:
        """Each kit's messages, one per line, `per_kit` of them a millisecond apart from `start`."""
        lines = {}
        for kit_id in self.credentials:
            messages = []
            for n in range(per_kit):
                at = (start + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                messages.append(
                    f'{{"schema_version":1,"kit_id":"{kit_id}","timestamp":"{at}","sequence":{n + 1},'
                    '"readings":{"temperature":21.5,"humidity":55.0,"co2":420.0,"light":1200.0}}\n'
                )
            lines[kit_id] = "".join(messages).encode()
        return lines

    def publish(self, payloads: dict[str, bytes]) -> list[threading.Thread]:
        """Starts every kit publishing its payloads; join the threads to wait until the broker
        has acknowledged them all."""

        def publish_all(kit_id: str, lines: bytes) -> None:
            files = self.credentials[kit_id]
            completed = subprocess.run(
                [
                    *("mosquitto_pub", "-h", "localhost", "-p", str(self.broker.port)),
                    *("--cafile", str(files.root_ca), "--cert", str(files.certificate)),
                    *("--key", str(files.private_key)),
                    *("-i", f"astroplant-{kit_id}", "-q", "1", "-M", "100"),
                    *("-t", f"astroplant/kits/astroplant-{kit_id}/measurements", "-l"),
                ],
                input=lines,
                capture_output=True,
                timeout=600,
            )
            if completed.returncode != 0:
                sys.exit(f"mosquitto_pub for {kit_id} failed: {completed.stderr.decode().strip()}")

        threads = [threading.Thread(target=publish_all, args=pair) for pair in payloads.items()]
        for thread in threads:
            thread.start()
        return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20000, help="per measurement, spread over the kits")
    parser.add_argument("--batch-size", type=int, default=2000, help="the bridge's --batch-size")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    per_kit = arguments.messages // arguments.kits
    total = per_kit * arguments.kits
    with MotoServer() as moto:
        kit_ids = local_product_prepare(moto=moto, work=work, prefix="bench", kit_count=arguments.kits)
        import boto3

        from kits.certificates import project_authority
        from localdev.mosquitto import MosquittoBroker

        dynamodb = boto3.client("dynamodb")

        print(f"raw: batch_write_item of {total} items...", flush=True)
        raw_rates = [raw_write_rate(dynamodb, total, "bench-raw-before")]
        with MosquittoBroker(authority=project_authority(), directory=work / "mosquitto") as broker:
            bridge = Bridge(
                bridge_environment(broker),
                work / "ingest.log",
                arguments.batch_size,
            )
            kits = Kits(broker, kit_ids)
            try:
                print(f"live: {arguments.kits} kits publish {total} messages while the bridge stores...", flush=True)
                payloads = kits.payloads(per_kit, datetime.now(UTC) - timedelta(hours=2))
                bridge.start()
                began = time.perf_counter()
                threads = kits.publish(payloads)
                live_seconds = bridge.wait_stored(total, began)
                for thread in threads:
                    thread.join()
                bridge.stop()

                print(f"backlog: the kits publish {total} more while the bridge is away...", flush=True)
                for thread in kits.publish(kits.payloads(per_kit, datetime.now(UTC) - timedelta(hours=1))):
                    thread.join()
                starting = time.perf_counter()
                bridge.start()
                began = time.perf_counter()
                startup_seconds = began - starting
                backlog_seconds = bridge.wait_stored(total, began)
                bridge.stop()
            finally:
                if bridge.process and bridge.process.poll() is None:
                    bridge.stop()
        raw_rates.append(raw_write_rate(dynamodb, total, "bench-raw-after"))
        raw_in_flight = raw_write_rate(dynamodb, total, "bench-raw-in-flight", in_flight=4)

    raw = sum(raw_rates) / len(raw_rates)
    live, backlog = total / live_seconds, total / backlog_seconds
    print()
    print(
        f"raw batch_write_item, same DynamoDB: {raw:7.0f} items/s (before {raw_rates[0]:.0f}, after {raw_rates[1]:.0f})"
    )
    print(f"live (kits publishing meanwhile):    {live:7.0f} messages/s   ratio {live / raw:.2f}")
    print(f"backlog (bridge draining alone):     {backlog:7.0f} messages/s   ratio {backlog / raw:.2f}   (aim: 0.7)")
    print(
        f"(raw with 4 calls in flight: {raw_in_flight:.0f} items/s; against it live {live / raw_in_flight:.2f}, "
        f"backlog {backlog / raw_in_flight:.2f})"
    )
    print(f"({total} messages from {arguments.kits} kits each time; 4 sensors per message)")
    print(f"(the bridge's start-up before draining, not counted above: {startup_seconds:.2f} s)")
    figures_print(
        {
            "kits": arguments.kits,
            "messages": total,
            "batch_size": arguments.batch_size,
            "raw_items_per_s": raw,
            "raw_before_items_per_s": raw_rates[0],
            "raw_after_items_per_s": raw_rates[1],
            "raw_in_flight_items_per_s": raw_in_flight,
            "live_msg_per_s": live,
            "live_ratio": live / raw,
            "backlog_msg_per_s": backlog,
            "backlog_ratio": backlog / raw,
            "live_in_flight_ratio": live / raw_in_flight,
            "backlog_in_flight_ratio": backlog / raw_in_flight,
            "bridge_startup_s": startup_seconds,
        }
    )


if __name__ == "__main__":
    main()
