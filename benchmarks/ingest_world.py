"""What the ingest benchmarks share: this process pointed at a local AWS and a scratch database,
and the environment a `manage.py ingest` process needs to reach a local broker."""

import os
from pathlib import Path


def local_product_prepare(*, moto, work: Path, prefix: str, kit_count: int) -> list[str]:
    """Point this process at `moto` and a SQLite database under `work`, migrate, create the
    telemetry tables and register `kit_count` kits; returns their ids. Their provisioning is
    queued to a broker file under `work` that nothing reads: these benchmarks need no AWS IoT."""
    os.environ.update(
        moto.client_env(),
        DJANGO_SETTINGS_MODULE="astroplant_site.settings.local",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        CELERY_BROKER_URL=f"sqla+sqlite:///{work / 'broker.sqlite3'}",
        IOT_CA_DIR=str(work / "ca"),
        DYNAMODB_TABLE_PREFIX=f"{prefix}-",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from kits import registry

    call_command("migrate", verbosity=0)
    call_command("dynamodb_setup", verbosity=0)
    kit_ids = [f"{prefix}-kit-{n}" for n in range(kit_count)]
    for kit_id in kit_ids:
        registry.kit_register(id=kit_id, name=kit_id)
    return kit_ids


def bridge_environment(broker, client_id: str = "astroplant.ingest") -> dict[str, str]:
    """The environment of a `manage.py ingest` process that subscribes to `broker` (a running
    localdev.mosquitto.MosquittoBroker) as `client_id`, with a certificate of that common name
    (mosquitto takes the client id from the certificate). Bridges that share the load each need
    their own: one of localdev.mosquitto.INGEST_CLIENTS, which the broker's ACL allows. They
    share through the default INGEST_SHARE_GROUP."""
    files = broker.client_credentials(client_id)
    return {
        **os.environ,
        "INGEST_MQTT_HOST": "localhost",
        "INGEST_MQTT_PORT": str(broker.port),
        "INGEST_CLIENT_ID": client_id,
        "INGEST_CERTIFICATE_FILE": str(files.certificate),
        "INGEST_PRIVATE_KEY_FILE": str(files.private_key),
        "INGEST_ROOT_CA_FILE": str(files.root_ca),
        "PYTHONUNBUFFERED": "1",
    }
