"""Who is in a simulated fleet: deterministic device profiles for a seed.

Purely computational: the same (count, seed, tenants) give the same devices, whatever runs
them. Roughly half Windows (servers, point-of-sale and office workstations) and half Linux
servers, a few of them gateways (never patched), across the example tenants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_TENANTS = ("acme/retail", "acme/logistics", "acme")

WINDOWS_SERVERS = (
    ("Windows Server 2022 Datacenter", "10.0.20348"),
    ("Windows Server 2019 Standard", "10.0.17763"),
)
WINDOWS_DESKTOPS = (
    ("Windows 11 Enterprise", "10.0.22631"),
    ("Windows 10 Enterprise", "10.0.19045"),
)
# What each of those OSes writes under HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion
# (ProductName, EditionID, DisplayVersion) and its build with the update revision (UBR) of the
# newest cumulative update of `feeds/example-catalogue.json` for it (scripts/generate_catalogue.py,
# CU_BUILDS): the devices are patched up to the catalogue, so server-side applicability matches
# them by product name and finds nothing the simulated agent cannot install. Windows 11 still
# writes `Windows 10 Enterprise` as its ProductName, as real machines do.
WINDOWS_REGISTRY = {
    "Windows Server 2022 Datacenter": (
        "Windows Server 2022 Datacenter",
        "ServerDatacenter",
        "21H2",
        "10.0.20348.4459",
    ),
    "Windows Server 2019 Standard": (
        "Windows Server 2019 Standard",
        "ServerStandard",
        "1809",
        "10.0.17763.8142",
    ),
    "Windows 11 Enterprise": ("Windows 10 Enterprise", "Enterprise", "23H2", "10.0.22631.6070"),
    "Windows 10 Enterprise": ("Windows 10 Enterprise", "Enterprise", "22H2", "10.0.19045.6741"),
}
SERVER_CORE_EVERY = 3  # one Windows server in three runs without the desktop experience
LINUX = (
    ("Ubuntu", "24.04"),
    ("Ubuntu", "22.04"),
    ("Debian GNU/Linux", "12"),
    ("Red Hat Enterprise Linux", "9.4"),
    ("AlmaLinux", "9.4"),
)
LINUX_ROLES = ("web", "web", "db", "app")
SITES = ("fra", "ber", "muc")
GATEWAY_EVERY = 20  # one Linux device in about twenty is a gateway


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    index: int
    tenant: str
    hostname: str
    os_family: str  # windows | linux
    os_name: str
    os_version: str
    role: str  # server | workstation | gateway
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def os_label(self) -> str:
        return f"{self.os_name} {self.os_version}"

    @property
    def os_build(self) -> str | None:
        """Windows: the full build (`10.0.20348.4459`); None for Linux."""
        registry = WINDOWS_REGISTRY.get(self.os_name)
        return registry[3] if registry else None

    def windows(self) -> dict[str, object] | None:
        """Windows: what the device reports as `inventory.windows` (registry values as real
        machines write them); None for Linux."""
        registry = WINDOWS_REGISTRY.get(self.os_name)
        if registry is None:
            return None
        product, edition, display_version, _ = registry
        if self.role == "workstation":
            installation = "Client"
        else:
            installation = "Server Core" if self.index % SERVER_CORE_EVERY == 0 else "Server"
        return {
            "productName": product,
            "installationType": installation,
            "editionId": edition,
            "displayVersion": display_version,
            "architecture": "AMD64",
            "hotpatchEnrolled": False,
        }


def plan_fleet(
    count: int, *, seed: int, tenants: tuple[str, ...] = DEFAULT_TENANTS
) -> list[DeviceProfile]:
    """`count` device profiles; hostnames are unique within the fleet."""
    if count < 0:
        raise ValueError("a fleet cannot have a negative number of devices")
    if not tenants:
        raise ValueError("a fleet needs at least one tenant")
    return [_profile(index, seed=seed, tenants=tenants) for index in range(count)]


def _profile(index: int, *, seed: int, tenants: tuple[str, ...]) -> DeviceProfile:
    rng = random.Random(f"{seed}:profile:{index}")  # noqa: S311 - simulation, not security
    tenant = tenants[index % len(tenants)]
    env = "prod" if rng.random() < 0.8 else "staging"
    site = rng.choice(SITES)
    number = f"{index + 1:04d}"
    if rng.random() < 0.5:
        if rng.random() < 0.4:
            name, version = rng.choice(WINDOWS_SERVERS)
            return DeviceProfile(
                index,
                tenant,
                f"win-srv-{number}",
                "windows",
                name,
                version,
                "server",
                {"env": env, "site": site},
            )
        name, version = rng.choice(WINDOWS_DESKTOPS)
        prefix = "pos" if rng.random() < 0.5 else "desk"
        return DeviceProfile(
            index,
            tenant,
            f"{prefix}-{number}",
            "windows",
            name,
            version,
            "workstation",
            {"env": env, "site": site},
        )
    name, version = rng.choice(LINUX)
    if rng.randrange(GATEWAY_EVERY) == 0:
        return DeviceProfile(
            index,
            tenant,
            f"gw-{number}",
            "linux",
            name,
            version,
            "gateway",
            {"env": env, "site": site, "role": "gateway"},
        )
    role = rng.choice(LINUX_ROLES)
    return DeviceProfile(
        index,
        tenant,
        f"{role}-{number}",
        "linux",
        name,
        version,
        "server",
        {"env": env, "site": site, "role": role},
    )
