"""`python -m localdev.simulated_kit --kit demo-kit-1`: one simulated kit for `make run`.

Waits until the kit is provisioned (the Celery worker does that), unpacks its certificate bundle
exactly as a Pi would, and then becomes the real kit agent (`python -m device run`) with the
simulated sensors, publishing every few seconds through the local mosquitto.
"""

import argparse
import io
import os
import sys
import time
import zipfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", required=True)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--directory", type=Path, default=Path("var/simulated-kits"))
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "astroplant_site.settings.local")
    import django

    django.setup()
    from kits import bundles
    from kits.models import Kit, ProvisioningStatus

    print(f"Waiting for {arguments.kit} to be provisioned...", flush=True)
    while True:
        kit = Kit.objects.filter(pk=arguments.kit).first()
        if kit and kit.provisioning_status == ProvisioningStatus.ACTIVE:
            break
        time.sleep(1)
    certificate = kit.certificates.get(aws_certificate_id=kit.certificate_id)
    folder = (arguments.directory / kit.id).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with bundles.bundle_open(certificate.bundle_path) as file:
        zipfile.ZipFile(io.BytesIO(file.read())).extractall(folder)
    config = folder / "kit.toml"
    config.write_text(config.read_text() + f"\n[agent]\ninterval_seconds = {arguments.interval}\n")
    (folder / "unsent.sqlite3").unlink(missing_ok=True)  # a fresh local AWS: start the kit afresh too
    print(f"{kit.id} is active: starting its agent with {config}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "device", "run", "--config", str(config)])  # noqa: S606


if __name__ == "__main__":
    main()
