"""A redis-server of our own on a free port, for tests that stop and restart the Celery broker
(the machine's Redis on 6379 is shared and must keep running). Nothing is kept on disk: a
restarted server starts empty, as a Redis that lost its memory would."""

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port, wait_for_port


@dataclass
class RedisServer:
    """`redis-server --port N --save "" --appendonly no` on 127.0.0.1, in `directory`."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        executable = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/local/bin")
        if not executable:
            raise RuntimeError("redis-server is not installed: `apt-get install redis-server`.")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.directory / "redis.log", "a") as log:
            self.process = subprocess.Popen(command, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
