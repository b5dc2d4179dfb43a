"""Ingest benchmark: messages per second from N simulated kits through mosquitto (mutual TLS) and
the ingest bridge (`manage.py ingest`, a real process) into DynamoDB on moto_server, against the
raw write rate of the same DynamoDB process measured in the same run.

    .venv/bin/python benchmarks/ingest_bench.py [--kits 10] [--messages 3000]

Baseline: `batch_write_item` calls of 25 items shaped like raw readings (one per kit message), sent
back to back from one thread: the fastest the DynamoDB process takes these writes. Pipeline: the
kits publish with QoS 1 as fast as the broker acknowledges; the clock stops when the bridge has
stored the last reading. Ratio = pipeline messages/s ÷ raw items/s (aim: at least 0.7).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.moto import MotoServer  # noqa: E402


def raw_write_rate(client, count: int) -> float:
    """Items per second of back-to-back 25-item batch_write_item calls into a scratch table."""
    table = "bench-raw-baseline"
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
    began = time.perf_counter()
    for offset in range(0, count, 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[offset : offset + 25]]
        client.batch_write_item(RequestItems={table: batch})
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", type=int, default=10)
    parser.add_argument("--messages", type=int, default=3000, help="in all, spread over the kits")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    with MotoServer() as moto:
        os.environ.update(moto.client_env())
        os.environ.update(
            DJANGO_SETTINGS_MODULE="astroplant_site.settings.local",
            DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
            IOT_CA_DIR=str(work / "ca"),
            DYNAMODB_TABLE_PREFIX="bench-",
        )
        import django

        django.setup()
        import boto3
        import paho.mqtt.client as mqtt
        from django.core.management import call_command

        from kits import services
        from kits.certificates import project_authority
        from localdev.mosquitto import MosquittoBroker

        call_command("migrate", verbosity=0)
        call_command("dynamodb_setup", verbosity=0)
        kit_ids = [f"bench-kit-{n}" for n in range(arguments.kits)]
        for kit_id in kit_ids:
            services.kit_register(id=kit_id, name=kit_id)

        print(f"Baseline: raw batch_write_item of {arguments.messages} items...", flush=True)
        raw_rate = raw_write_rate(boto3.client("dynamodb"), arguments.messages)

        with MosquittoBroker(authority=project_authority(), directory=work / "mosquitto") as broker:
            bridge_files = broker.client_credentials("astroplant.ingest")
            env = {
                **os.environ,
                "INGEST_MQTT_HOST": "localhost",
                "INGEST_MQTT_PORT": str(broker.port),
                "INGEST_CERTIFICATE_FILE": str(bridge_files.certificate),
                "INGEST_PRIVATE_KEY_FILE": str(bridge_files.private_key),
                "INGEST_ROOT_CA_FILE": str(bridge_files.root_ca),
                "PYTHONUNBUFFERED": "1",
            }
            log_path = work / "ingest.log"
            with open(log_path, "w") as log:
                bridge = subprocess.Popen(
                    [sys.executable, "manage.py", "ingest", "--report-every", "0.2"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                while "subscribed to" not in log_path.read_text():
                    time.sleep(0.1)
                publishers = []
                for kit_id in kit_ids:
                    files = broker.client_credentials(f"astroplant-{kit_id}")
                    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"astroplant-{kit_id}")
                    client.tls_set(str(files.root_ca), str(files.certificate), str(files.private_key))
                    client.max_inflight_messages_set(100)
                    client.connect("localhost", broker.port)
                    client.loop_start()
                    publishers.append((kit_id, client))
                per_kit = arguments.messages // arguments.kits
                total = per_kit * arguments.kits
                now = datetime.now(UTC) - timedelta(hours=1)

                def publish_all(kit_id, client):
                    infos = []
                    for n in range(per_kit):
                        at = (now + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                        payload = (
                            f'{{"schema_version":1,"kit_id":"{kit_id}","timestamp":"{at}","sequence":{n + 1},'
                            '"readings":{"temperature":21.5,"humidity":55.0,"co2":420.0,"light":1200.0}}'
                        )
                        infos.append(
                            client.publish(f"astroplant/kits/astroplant-{kit_id}/measurements", payload, qos=1)
                        )
                    for info in infos:
                        info.wait_for_publish(timeout=120)

                print(f"Pipeline: {arguments.kits} kits publish {total} messages...", flush=True)
                began = time.perf_counter()
                threads = [threading.Thread(target=publish_all, args=pair) for pair in publishers]
                for thread in threads:
                    thread.start()
                pattern = re.compile(r"(\d+) messages: (\d+) readings stored")
                stored = 0
                while stored < total:
                    found = pattern.findall(log_path.read_text())
                    stored = int(found[-1][1]) if found else 0
                    if time.perf_counter() - began > 600:
                        sys.exit(f"Only {stored} of {total} readings stored after 600 s; see {log_path}")
                    time.sleep(0.05)
                elapsed = time.perf_counter() - began
                for thread in threads:
                    thread.join()
                for _, client in publishers:
                    client.disconnect()
                    client.loop_stop()
            finally:
                bridge.terminate()
                bridge.wait(timeout=30)

    pipeline_rate = total / elapsed
    print()
    print(f"raw batch_write_item into the same DynamoDB: {raw_rate:8.0f} items/s")
    print(
        f"kits -> mosquitto -> bridge -> DynamoDB:     {pipeline_rate:8.0f} messages/s "
        f"({total} messages from {arguments.kits} kits in {elapsed:.1f} s)"
    )
    print(f"ratio pipeline / raw:                        {pipeline_rate / raw_rate:8.2f}   (aim: at least 0.7)")


if __name__ == "__main__":
    main()
