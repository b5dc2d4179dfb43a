"""Ingest benchmark: messages per second from N simulated kits through mosquitto (mutual TLS) and
the ingest bridge (`manage.py ingest`, real processes, one or several) into DynamoDB on
moto_server, against the raw write rate of the same DynamoDB process measured in the same run.

    .venv/bin/python benchmarks/ingest_bench.py [--kits 10] [--messages 20000] [--batch-size 2000]
        [--bridges 1]

- raw: `batch_write_item` calls of 25 items shaped like raw readings (one per kit message), back
  to back from one thread, before and after the pipeline runs; the mean is the baseline. Also
  shown: the same with 4 calls in flight, as the bridge sends its raw batches (moto takes them
  about a fifth faster).
- bridges: `--bridges N` (1 to 8) runs N bridge processes in one MQTT shared subscription (the
  default INGEST_SHARE_GROUP), so the broker splits the messages between them. Each has its own
  client id (INGEST_CLIENT_ID: astroplant.ingest, astroplant.ingest.2, ...; the ones the local
  broker's ACL allows, localdev.mosquitto.INGEST_CLIENTS) and a certificate of that common name.
  They start together; what they stored is the sum of each one's latest progress line.
- live: the bridges start and subscribe, then the kits publish with QoS 1 as fast as the broker
  acknowledges while the bridges store; the clock stops when the bridges have stored the last
  reading. On a 2-core machine the kits' TLS publishing, mosquitto, the bridges and moto_server
  all share the CPU.
- backlog: the kits publish while the bridges are away (the persistent sessions they made in
  the live phase, members of the shared subscription, queue their shares at the broker), then
  the bridges start and drain them: their own rate, kits idle. The clock starts when every
  bridge says it is connected and subscribed; what a bridge that was up earlier stored before
  then is left out of the rate (`backlog_stored_before_clock`). Their start-up (Python, Django,
  the table check, TLS; until the last is subscribed) is timed apart.
Ratios = messages/s ÷ raw items/s (aim: at least 0.7).

The last line of the output is one JSON object of the figures: `kits`, `messages` (each time),
`batch_size`, `bridges`; `raw_items_per_s` (the baseline, mean of `raw_before_items_per_s` and
`raw_after_items_per_s`), `raw_in_flight_items_per_s`; `live_msg_per_s`, `live_ratio`,
`backlog_msg_per_s`, `backlog_ratio`, and against the raw rate with 4 calls in flight
`live_in_flight_ratio`, `backlog_in_flight_ratio`; `bridge_startup_s`,
`backlog_stored_before_clock`; readings each bridge stored, in client id order: over both
phases `stored_per_bridge`, and `live_stored_per_bridge`, `backlog_stored_per_bridge`.

The bridges are stopped (SIGTERM, then killed after 30 s) however the run ends, also when this
script is interrupted or sent SIGTERM. Their logs are kept in the run's temporary folder
(astroplant.ingest.log, astroplant.ingest.2.log, ...).
"""

import argparse
import re
import signal
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
from localdev.mosquitto import INGEST_CLIENTS  # noqa: E402
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


class BridgeFailed(Exception):
    """A bridge ended, or did not get somewhere in time."""


class Bridge:
    """One `manage.py ingest` process; `stored()` reads its progress lines since it last started."""

    def __init__(self, client_id: str, env: dict, log_path: Path, batch_size: int):
        self.client_id, self.env, self.log_path, self.batch_size = client_id, env, log_path, batch_size
        self.process: subprocess.Popen | None = None
        self.offset = 0

    def launch(self) -> None:
        """Start the process; `subscribed()` says when it is connected and subscribed."""
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "ingest", "--report-every", "0.02", "--batch-size", str(self.batch_size)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def subscribed(self) -> bool:
        self.check()
        return "subscribed to" in self._log()

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process else None
            raise BridgeFailed(f"The bridge {self.client_id} ended (exit code {code}); see {self.log_path}")

    def stored(self) -> int:
        found = STORED.findall(self._log())
        return int(found[-1][1]) if found else 0

    def terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the process to end until `deadline` (time.monotonic()), then kill it."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"The bridge {self.client_id} did not stop within the time after SIGTERM: killed", flush=True)
            self.process.kill()
            self.process.wait()

    def _log(self) -> str:
        return self.log_path.read_text()[self.offset :]


class Bridges:
    """N bridges in one shared subscription, started and stopped together."""

    def __init__(self, bridges: list[Bridge]):
        self.bridges = bridges

    def start(self, timeout: float = 120) -> None:
        """Launch every bridge, and return once all are connected and subscribed."""
        for bridge in self.bridges:
            bridge.launch()
        deadline = time.monotonic() + timeout
        waiting = list(self.bridges)
        while waiting:
            waiting = [bridge for bridge in waiting if not bridge.subscribed()]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(bridge.client_id for bridge in waiting)
                raise BridgeFailed(
                    f"Not subscribed after {timeout:.0f} s: {names}; see {self.bridges[0].log_path.parent}"
                )
            time.sleep(0.005)

    def stored_each(self) -> list[int]:
        return [bridge.stored() for bridge in self.bridges]

    def stored(self) -> int:
        return sum(self.stored_each())

    def wait_stored(self, total: int, began: float, check=lambda: None, timeout: float = 600) -> float:
        """Seconds from `began` (time.perf_counter()) until the bridges have stored `total`
        readings between them; `check` raises if something else they wait for has failed."""
        while self.stored() < total:
            for bridge in self.bridges:
                bridge.check()
            check()
            if time.perf_counter() - began > timeout:
                raise BridgeFailed(
                    f"Only {self.stored()} of {total} readings stored after {timeout:.0f} s "
                    f"({self.stored_each()} by bridge); see {self.bridges[0].log_path.parent}"
                )
            time.sleep(0.02)
        return time.perf_counter() - began

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to every bridge still running, then kill those not ended after `timeout` s."""
        for bridge in self.bridges:
            bridge.terminate()
        deadline = time.monotonic() + timeout
        for bridge in self.bridges:
            bridge.wait_or_kill(deadline)


class Kits:
    """N kits, each publishing over mutual TLS with its own certificate (client id = thing name,
    QoS 1) through `mosquitto_pub` from mosquitto-clients. A load generator in C: ten Python MQTT
    clients took more than a core to publish this fast, which this 2-core machine would take
    from the broker, the bridge and DynamoDB under test. Payloads are built before the clock."""

    def __init__(self, broker, kit_ids):
        self.broker = broker
        self.credentials = {kit_id: broker.client_credentials(f"astroplant-{kit_id}") for kit_id in kit_ids}
        self.failures: list[str] = []

    def check(self) -> None:
        """Raise if a kit's publishing has failed (a thread cannot end the script itself)."""
        if self.failures:
            raise RuntimeError("; ".join(self.failures))

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
            try:
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
            except (OSError, subprocess.SubprocessError) as error:
                self.failures.append(f"mosquitto_pub for {kit_id} failed: {error}")
                return
            if completed.returncode != 0:
                self.failures.append(f"mosquitto_pub for {kit_id} failed: {completed.stderr.decode().strip()}")

        threads = [threading.Thread(target=publish_all, args=pair) for pair in payloads.items()]
        for thread in threads:
            thread.start()
        return threads


def join(threads: list[threading.Thread], kits: Kits) -> None:
    for thread in threads:
        thread.join()
    kits.check()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20000, help="per measurement, spread over the kits")
    parser.add_argument("--batch-size", type=int, default=2000, help="each bridge's --batch-size")
    parser.add_argument(
        "--bridges",
        type=int,
        default=1,
        help=f"bridge processes in one shared subscription (1 to {len(INGEST_CLIENTS)})",
    )
    arguments = parser.parse_args()
    if not 1 <= arguments.bridges <= len(INGEST_CLIENTS):
        parser.error(f"--bridges must be 1 to {len(INGEST_CLIENTS)}: the client ids the local broker lets in")
    if arguments.kits < 1 or arguments.messages < arguments.kits:
        parser.error("--kits must be positive and --messages at least --kits")
    # SIGTERM ends this script as Ctrl-C does, through the `finally` that stops the bridges.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("Stopped by SIGTERM"))
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    per_kit = arguments.messages // arguments.kits
    total = per_kit * arguments.kits
    client_ids = INGEST_CLIENTS[: arguments.bridges]
    with MotoServer() as moto:
        kit_ids = local_product_prepare(moto=moto, work=work, prefix="bench", kit_count=arguments.kits)
        import boto3

        from kits.certificates import project_authority
        from localdev.mosquitto import MosquittoBroker

        dynamodb = boto3.client("dynamodb")

        print(f"raw: batch_write_item of {total} items...", flush=True)
        raw_rates = [raw_write_rate(dynamodb, total, "bench-raw-before")]
        with MosquittoBroker(authority=project_authority(), directory=work / "mosquitto") as broker:
            bridges = Bridges(
                [
                    Bridge(
                        client_id,
                        bridge_environment(broker, client_id),
                        work / f"{client_id}.log",
                        arguments.batch_size,
                    )
                    for client_id in client_ids
                ]
            )
            kits = Kits(broker, kit_ids)
            several = arguments.bridges > 1
            them = f"{arguments.bridges} bridges" if several else "the bridge"
            try:
                store = "store" if several else "stores"
                print(f"live: {arguments.kits} kits publish {total} messages while {them} {store}...", flush=True)
                payloads = kits.payloads(per_kit, datetime.now(UTC) - timedelta(hours=2))
                # Also makes every bridge's persistent session a member of the shared
                # subscription, which the backlog below relies on.
                bridges.start()
                began = time.perf_counter()
                threads = kits.publish(payloads)
                live_seconds = bridges.wait_stored(total, began, check=kits.check)
                join(threads, kits)
                live_each = bridges.stored_each()
                bridges.stop()

                print(
                    f"backlog: the kits publish {total} more while {them} {'are' if several else 'is'} away...",
                    flush=True,
                )
                join(kits.publish(kits.payloads(per_kit, datetime.now(UTC) - timedelta(hours=1))), kits)
                starting = time.perf_counter()
                bridges.start()
                began = time.perf_counter()
                startup_seconds = began - starting
                before_clock = bridges.stored()
                backlog_seconds = bridges.wait_stored(total, began)
                backlog_each = bridges.stored_each()
                bridges.stop()
            except BridgeFailed as error:
                sys.exit(str(error))
            finally:
                bridges.stop()
        raw_rates.append(raw_write_rate(dynamodb, total, "bench-raw-after"))
        raw_in_flight = raw_write_rate(dynamodb, total, "bench-raw-in-flight", in_flight=4)

    raw = sum(raw_rates) / len(raw_rates)
    live, backlog = total / live_seconds, (total - before_clock) / backlog_seconds
    print()
    print(
        f"raw batch_write_item, same DynamoDB: {raw:7.0f} items/s (before {raw_rates[0]:.0f}, after {raw_rates[1]:.0f})"
    )
    print(f"live (kits publishing meanwhile):    {live:7.0f} messages/s   ratio {live / raw:.2f}")
    print(f"{'backlog (bridges draining alone):':37}{backlog:7.0f} messages/s   ratio {backlog / raw:.2f}   (aim: 0.7)")
    print(
        f"(raw with 4 calls in flight: {raw_in_flight:.0f} items/s; against it live {live / raw_in_flight:.2f}, "
        f"backlog {backlog / raw_in_flight:.2f})"
    )
    print(f"({total} messages from {arguments.kits} kits each time; 4 sensors per message)")
    until = "all" if several else "it"
    print(f"(the start-up before draining, until {until} subscribed, not counted above: {startup_seconds:.2f} s)")
    if before_clock:
        print(f"(stored in the backlog before the last bridge subscribed, left out of its rate: {before_clock})")
    for client_id, live_stored, backlog_stored in zip(client_ids, live_each, backlog_each, strict=True):
        print(f"  {client_id:22} stored {live_stored:7} live, {backlog_stored:7} backlog")
    figures_print(
        {
            "kits": arguments.kits,
            "messages": total,
            "batch_size": arguments.batch_size,
            "bridges": arguments.bridges,
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
            "backlog_stored_before_clock": before_clock,
            "stored_per_bridge": [a + b for a, b in zip(live_each, backlog_each, strict=True)],
            "live_stored_per_bridge": live_each,
            "backlog_stored_per_bridge": backlog_each,
        }
    )


if __name__ == "__main__":
    main()
