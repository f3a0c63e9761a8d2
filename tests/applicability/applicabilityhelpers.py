"""Helpers of the applicability tests: a small catalogue and a client of the real HTTP app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx

from controller.core.patches import FixedPackage, PatchRecord, ProductBuild
from controller.kinds.common import Classification, OsFamily, Severity
from controller.store import tokens

if TYPE_CHECKING:
    from controller.store import Store
    from controller.testing import SettableClock

SERVER_2019 = "Windows Server 2019"


def debian(name: str, version: str, *, arch: str = "amd64") -> PatchRecord:
    """A package-version patch of bookworm-security, as the deb-packages importer makes it."""
    return PatchRecord(
        id=f"{name}={version}",
        os=OsFamily.LINUX,
        classification=Classification.SECURITY,
        packages=(FixedPackage(name, version, "debian:12", arch, name),),
    )


CATALOGUE = (
    debian("openssl", "3.0.15-1~deb12u1"),
    debian("openssh-client", "1:9.2p1-2+deb12u7"),
    PatchRecord(
        id="ALSA-2026:0001",
        title="Important: openssl security update",
        os=OsFamily.LINUX,
        classification=Classification.SECURITY,
        severity=Severity.IMPORTANT,
        cves=("CVE-2026-0001",),
        packages=(
            FixedPackage("openssl", "1:3.0.7-27.el9_4", "almalinux:9", "x86_64"),
            FixedPackage("openssl-libs", "1:3.0.7-27.el9_4", "almalinux:9", "x86_64"),
        ),
    ),
    PatchRecord(
        id="KB5034127",
        title="2024-01 Security Update",
        os=OsFamily.WINDOWS,
        classification=Classification.SECURITY,
        severity=Severity.CRITICAL,
        released=date(2024, 1, 9),
        rating=8.8,
        cves=("CVE-2024-20674",),
        builds=(ProductBuild(SERVER_2019, "10.0.17763.5329"),),
    ),
)


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    clock: SettableClock

    def token(self, tenant: str, kind: tokens.TokenKind = tokens.TokenKind.READ) -> str:
        with self.store.write() as conn:
            return tokens.create_token(conn, kind=kind, tenant=tenant, now=self.clock()).secret

    async def enroll(self, hostname: str, os: dict[str, str]) -> tuple[str, dict[str, str]]:
        """Enrol through the API; the device id and its Authorization header."""
        body = {
            "enrollmentToken": self.token("acme/retail", tokens.TokenKind.ENROLLMENT),
            "hostname": hostname,
            "os": os,
            "agentVersion": "1.0.0",
            "role": "server",
        }
        answer = await self.client.post("/api/v1/enroll", json=body)
        assert 200 == answer.status_code, answer.text
        found = answer.json()
        return found["deviceId"], {"Authorization": f"Bearer {found['deviceToken']}"}

    async def report(self, device_id: str, auth: dict[str, str], body: dict[str, Any]) -> None:
        answer = await self.client.post(
            f"/api/v1/devices/{device_id}/report", json=body, headers=auth
        )
        assert 200 == answer.status_code, answer.text

    async def patches(self, device_id: str) -> list[dict[str, Any]]:
        """The device's patches as the read API shows them."""
        answer = await self.client.get(
            f"/api/v1/devices/{device_id}",
            headers={"Authorization": f"Bearer {self.token('acme')}"},
        )
        assert 200 == answer.status_code, answer.text
        found: list[dict[str, Any]] = answer.json()["patches"]
        return found
