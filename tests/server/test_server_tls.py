"""HTTPS on `serve` with a self-signed CA made by the openssl command: the certificate is
checked at start, served, and replaced on SIGHUP without a restart (issue 16, item 2)."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from controller.testing import PATCHCTL, PROJECT_ROOT, free_port

pytestmark = pytest.mark.slow


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A folder with a test CA (ca.pem, ca.key); `issue` adds server certificates to it."""
    pki = tmp_path / "pki"
    pki.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=patchctl test CA",
        cwd=pki,
    )
    return pki


def issue(pki: Path, name: str, serial: int) -> None:
    """A server certificate for 127.0.0.1, signed by the test CA."""
    (pki / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=pki,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        str(serial),
        "-days",
        "1",
        "-extfile",
        "san.cnf",
        "-out",
        f"{name}.pem",
        cwd=pki,
    )


def served_serial(port: int, ca: Path) -> int:
    """The serial number of the certificate the server presents now."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert()
    assert der is not None
    return int(str(der["serialNumber"]), 16)


def test_serve_speaks_https_and_reloads_its_certificate_on_sighup(
    pki: Path, tmp_path: Path
) -> None:
    """/healthz answers over TLS verified by the CA; after the files are replaced and SIGHUP
    sent, new connections see the new certificate; the process never restarts."""
    issue(pki, "server", 1001)
    port = free_port()
    server = subprocess.Popen(
        [
            *PATCHCTL,
            "serve",
            "--no-reconcile",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            f"sqlite:///{tmp_path / 'p.db'}",
            "--state-dir",
            str(tmp_path / "state"),
            "--tls-cert",
            str(pki / "server.pem"),
            "--tls-key",
            str(pki / "server.key"),
            "--log-format",
            "json",
        ],
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                trust = ssl.create_default_context(cafile=str(pki / "ca.pem"))
                health = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trust, timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "no HTTPS answer within 30 s"
                assert server.poll() is None, "serve exited"
                time.sleep(0.2)
        first = served_serial(port, pki / "ca.pem")
        issue(pki, "server", 2002)
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (
            second := served_serial(port, pki / "ca.pem")
        ) == first and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        _, logs = server.communicate(timeout=30)
    assert 200 == health.status_code
    assert (1001, 2002) == (first, second)
    assert "tls certificate reloaded" in logs
    assert 0 == server.returncode


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(("server.pem", None), "--tls-cert and --tls-key go together", id="cert-only"),
        pytest.param(
            ("server.pem", "other.key"), "TLS certificate", id="key-of-another-certificate"
        ),
        pytest.param(("missing.pem", "server.key"), "missing.pem", id="missing-file"),
    ],
)
def test_a_certificate_that_does_not_load_stops_serve_at_start(
    pki: Path, tmp_path: Path, files: tuple[str, str | None], message: str
) -> None:
    """Exit 2 naming the problem, before the database is created."""
    issue(pki, "server", 1)
    issue(pki, "other", 2)
    cert, key = files
    args = ["--tls-cert", str(pki / cert)] + (["--tls-key", str(pki / key)] if key else [])
    done = subprocess.run(
        [
            *PATCHCTL,
            "serve",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--db",
            f"sqlite:///{tmp_path / 'p.db'}",
            *args,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == done.returncode
    assert message in done.stderr
    assert not (tmp_path / "p.db").exists()
