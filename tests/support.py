"""Small helpers several test modules share."""

import io
import time
import tomllib
import zipfile
from pathlib import Path

from kits import bundles
from kits.models import Kit


def wait_until(condition, *, timeout: float = 20.0, what: str = "the condition", logs: tuple[Path, ...] = ()) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds,
    with the tail of each of `logs` (the processes involved) to say why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    tails = "".join(f"\n--- {log.name} ---\n" + "\n".join(log.read_text().splitlines()[-40:]) for log in logs)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}{tails}")


def unpack_bundle(kit: Kit, folder: Path) -> dict:
    """The kit's bundle unpacked into `folder`, as on the Pi; returns its kit.toml."""
    certificate = kit.certificates.get(aws_certificate_id=kit.certificate_id)
    with bundles.bundle_open(certificate.bundle_path) as file:
        zipfile.ZipFile(io.BytesIO(file.read())).extractall(folder)
    return tomllib.loads((folder / "kit.toml").read_text())
