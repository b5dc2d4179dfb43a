"""mosquitto with mutual TLS: the local stand-in for the AWS IoT Core MQTT broker.

It trusts exactly the project CA that signs the kits' certificates (kits/certificates.py), takes
each client's certificate common name as its username (the thing name), forces the client id to
it, and confines every kit to its own topics with pattern ACLs generated from the same rules as
the AWS IoT policy (kits/iot_policy.py). Its server certificate names localhost and 127.0.0.1,
because AWSIoTPythonSDK always checks the broker's host name.

Used by the tests (`MosquittoBroker(...).start()`), and by `make run` through
`python -m localdev.mosquitto --port 8883`, which prepares the files and then becomes mosquitto.
"""

import argparse
import getpass
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kits.certificates import CertificateAuthority, device_certificate_issue, server_certificate_issue
from kits.iot_policy import TOPIC_ROOT, kit_mosquitto_acl

from .ports import free_port, wait_for_port

SERVER_HOSTS = ["localhost", "127.0.0.1"]
# The ingest bridges' identities: the first, and more for bridges that share the load (each
# needs its own client id, and mosquitto takes the client id from the certificate). Thing names
# cannot contain a dot, so no kit can ever be issued a certificate with such a name.
INGEST_CLIENT = "astroplant.ingest"
INGEST_CLIENTS = [INGEST_CLIENT, *(f"{INGEST_CLIENT}.{number}" for number in range(2, 9))]
INGEST_ACL = "".join(
    f"user {client}\n"
    f"topic read {TOPIC_ROOT}/+/measurements\n"
    f"topic read {TOPIC_ROOT}/+/status\n"
    f"topic read {TOPIC_ROOT}/+/command-results\n"
    for client in INGEST_CLIENTS
)
# The backend's identity (BACKEND_MQTT_CLIENT_ID, control/mqtt_publisher.py): it sends kits their
# configuration and commands, and nothing else; the kits' own words reach it through the ingest.
BACKEND_CLIENT = "astroplant.backend"
BACKEND_ACL = f"user {BACKEND_CLIENT}\ntopic write {TOPIC_ROOT}/+/config\ntopic write {TOPIC_ROOT}/+/commands\n"


def mosquitto_executable() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("mosquitto is not installed: `apt-get install mosquitto` (the set-up does this).")
    return found


@dataclass(frozen=True)
class ClientCredentials:
    """Files a client connects with: its certificate, its key and the CA that signs the broker."""

    certificate: Path
    private_key: Path
    root_ca: Path


@dataclass
class MosquittoBroker:
    """A mosquitto process on 127.0.0.1:`port` whose files live in `directory`."""

    authority: CertificateAuthority
    directory: Path
    port: int = field(default_factory=free_port)
    extra_acl: str = ""  # more `user ...` blocks, e.g. a test's observer
    log_to_stdout: bool = False
    process: subprocess.Popen | None = None

    @property
    def root_ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def config_file(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.directory / "mosquitto.log"

    def prepare(self) -> Path:
        """Write the CA, a fresh server certificate, the ACL and the config; return the config."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.root_ca.write_text(self.authority.certificate_pem)
        server = server_certificate_issue(authority=self.authority, hosts=SERVER_HOSTS)
        (self.directory / "server.crt").write_text(server.certificate_pem)
        _write_private(self.directory / "server.key", server.private_key_pem)
        acl = self.directory / "acl"
        acl.write_text(
            kit_mosquitto_acl()
            + "\n"
            + INGEST_ACL
            + "\n"
            + BACKEND_ACL
            + ("\n" + self.extra_acl if self.extra_acl else "")
        )
        log_destination = "stdout" if self.log_to_stdout else f"file {self.log_file}"
        self.config_file.write_text(
            "# Written by localdev/mosquitto.py; rewritten at every start.\n"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"acl_file {acl}\n"
            # Sessions and their queued messages survive a restart of the broker, as on AWS IoT.
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            # The ingest bridge acknowledges a batch only once it is stored, and holds up to three
            # (one being stored, one waiting, one being checked): let them be big.
            "max_inflight_messages 10000\n"
            "max_queued_messages 100000\n"
            f"log_dest {log_destination}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            # Started as root, mosquitto would switch to the `mosquitto` user, who cannot read
            # our key files: stay who we are.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {self.root_ca}\n"
            f"certfile {self.directory / 'server.crt'}\n"
            f"keyfile {self.directory / 'server.key'}\n"
            "tls_version tlsv1.2\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            # A kit cannot take over another kit's session by borrowing its client id.
            "use_username_as_clientid true\n"
        )
        return self.config_file

    def client_credentials(self, common_name: str) -> ClientCredentials:
        """A client certificate signed by the project CA, written next to the broker's files:
        for a service such as the ingest bridge (INGEST_CLIENT), the backend (BACKEND_CLIENT) or a
        test's observer."""
        issued = device_certificate_issue(authority=self.authority, common_name=common_name, valid_days=30)
        folder = self.directory / "clients" / common_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "certificate.pem.crt").write_text(issued.certificate_pem)
        _write_private(folder / "private.pem.key", issued.private_key_pem)
        return ClientCredentials(folder / "certificate.pem.crt", folder / "private.pem.key", self.root_ca)

    def start(self) -> "MosquittoBroker":
        self.prepare()
        self.process = subprocess.Popen(
            [mosquitto_executable(), "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError:
            self.stop()
            log = self.log_file.read_text() if self.log_file.exists() else "(no log)"
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{log}") from None
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def main() -> None:
    """`python -m localdev.mosquitto --port 8883`: prepare the broker for the project CA named
    by the Django settings, then replace this process with mosquitto (for honcho in make run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", type=Path, default=Path("var/mosquitto"))
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "astroplant_site.settings.local")
    import django

    django.setup()
    from kits.certificates import project_authority

    broker = MosquittoBroker(
        authority=project_authority(), directory=arguments.directory.resolve(), port=arguments.port, log_to_stdout=True
    )
    config = broker.prepare()
    print(f"mosquitto with mutual TLS on 127.0.0.1:{arguments.port} (config {config})", flush=True)
    sys.stdout.flush()
    os.execv(mosquitto_executable(), ["mosquitto", "-c", str(config)])  # noqa: S606 (a fixed program, our config)


if __name__ == "__main__":
    main()
