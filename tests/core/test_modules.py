"""Module streams (RHEL family): advisories judge only hosts on their stream (issue 13.2)."""

from __future__ import annotations

import pytest

from controller.core import modules
from controller.core.applicability import (
    ApplicabilityIndex,
    InstalledPackage,
    Inventory,
    detect_missing,
)
from controller.core.patches import FixedPackage, PatchRecord, from_dict, to_dict
from controller.kinds.common import OsFamily

EL8 = "almalinux:8"
PHP74 = "7.4.33-1.module_el8.10.0+3800+11aa22bb"
PHP74_FIXED = "0:7.4.33-2.module_el8.10.0+4243+1ccf9ea1"
PHP82_FIXED = "0:8.2.25-1.module_el8.10.0+4250+99ee88dd"


def fixed(name: str, version: str, stream: str | None = None) -> FixedPackage:
    return FixedPackage(name, version, EL8, "x86_64", module=stream)


CATALOGUE = (
    # One advisory per stream, as AlmaLinux and Red Hat publish them.
    PatchRecord(id="ALSA-2099:0074", packages=(fixed("php", PHP74_FIXED, "php:7.4"),)),
    PatchRecord(id="ALSA-2099:0082", packages=(fixed("php", PHP82_FIXED, "php:8.2"),)),
    # One advisory, one stream, three contexts of libzip (real shape: ALSA-2026:47750).
    PatchRecord(
        id="ALSA-2099:0100",
        packages=(
            fixed("libzip", "0:1.6.1-1.module_el8.6.0+2750+78feabcb", "php:7.4"),
            fixed("libzip", "0:1.6.1-1.module_el8.6.0+3239+bedf0508", "php:7.4"),
            fixed("libzip", "0:1.6.1-1.module_el8.10.0+3935+28808425", "php:7.4"),
        ),
    ),
    # The stream is unknown (an OSV record whose title names two modules): the marker decides.
    PatchRecord(
        id="ALSA-2099:0200",
        packages=(fixed("libvirt", "0:8.0.0-23.module_el8.10.0+4000+aaaaaaaa"),),
    ),
    # A non-modular build of a name that the host installed from a module.
    PatchRecord(id="ALSA-2099:0300", packages=(fixed("nginx", "1:1.14.1-10.el8"),)),
    # A stream fix next to a non-modular fix, in one advisory.
    PatchRecord(
        id="ALSA-2099:0400",
        packages=(
            fixed("perl-DBI", "0:1.641-5.module_el8.10.0+4100+cccccccc", "perl-DBI:1.641"),
            fixed("perl-DBI", "0:1.641-9.el8"),
        ),
    ),
)
INDEX = ApplicabilityIndex(CATALOGUE)


def host(*packages: tuple[str, str, str], streams: tuple[str, ...] | None = None) -> Inventory:
    return Inventory(
        os=OsFamily.LINUX,
        release=EL8,
        packages=tuple(
            InstalledPackage(name, version, "x86_64", epoch, release)
            for name, epoch, version_release in packages
            for version, release in [version_release.split("-", 1)]
        ),
        module_streams=streams,
    )


def missing(inventory: Inventory) -> list[str]:
    return [finding.patch_id for finding in detect_missing(INDEX, inventory)]


PHP_HOST = ("php", "0", f"7.4.33-{PHP74.split('-', 1)[1]}")


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        pytest.param(host(PHP_HOST, streams=("php:7.4",)), ["ALSA-2099:0074"], id="php74-stream"),
        pytest.param(
            host(("php", "0", "8.2.20-1.module_el8.10.0+4200+12345678"), streams=("php:8.2",)),
            ["ALSA-2099:0082"],
            id="php82-stream",
        ),
        # Without streams, both stream fixes are modular: 8.2 sorts above 7.4 (reported to
        # agents as the reason to report streams).
        pytest.param(host(PHP_HOST), ["ALSA-2099:0074", "ALSA-2099:0082"], id="no-streams"),
        # A host that names streams of other modules only: php falls back to the marker.
        pytest.param(
            host(PHP_HOST, streams=("nodejs:18",)),
            ["ALSA-2099:0074", "ALSA-2099:0082"],
            id="stream-of-another-module",
        ),
        # A php installed outside any module is updated by neither stream.
        pytest.param(host(("php", "0", "7.2.24-1.el8"), streams=()), [], id="non-modular-php"),
        pytest.param(host(("php", "0", "7.2.24-1.el8")), [], id="non-modular-php-no-streams"),
    ],
)
def test_stream_fixes_judge_only_hosts_on_that_stream(
    inventory: Inventory, expected: list[str]
) -> None:
    """A php:7.4 host is judged by the php:7.4 advisory and never by the php:8.2 one."""
    assert expected == missing(inventory)


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        pytest.param("1.6.1-1.module_el8.6.0+3239+bedf0508", [], id="equals-older-context"),
        pytest.param("1.6.1-1.module_el8.6.0+2750+78feabcb", [], id="equals-oldest-context"),
        pytest.param("1.6.1-1.module_el8.10.0+3935+28808425", [], id="equals-newest"),
        pytest.param(
            "1.6.1-1.module_el8.4.0+2000+00000000", ["ALSA-2099:0100"], id="below-every-context"
        ),
    ],
)
def test_an_installed_fixed_build_is_not_missing(installed: str, expected: list[str]) -> None:
    """A host on one of an advisory's fixed builds is not missing it, whichever sorts highest."""
    inventory = host(("libzip", "0", installed), streams=("php:7.4",))
    assert expected == missing(inventory)


@pytest.mark.parametrize(
    ("installed", "streams", "expected"),
    [
        pytest.param(
            "8.0.0-22.module_el8.10.0+3999+aaaaaaaa", None, ["ALSA-2099:0200"], id="modular"
        ),
        pytest.param(
            "8.0.0-22.module_el8.10.0+3999+aaaaaaaa",
            ("virt:rhel",),
            ["ALSA-2099:0200"],
            id="modular-with-streams",
        ),
        pytest.param("8.0.0-22.el8", None, [], id="non-modular"),
    ],
)
def test_fixes_of_unknown_stream_follow_the_release_marker(
    installed: str, streams: tuple[str, ...] | None, expected: list[str]
) -> None:
    """A modular fix whose stream the feed did not name judges modular packages only."""
    assert expected == missing(host(("libvirt", "0", installed), streams=streams))


@pytest.mark.parametrize(
    ("package", "streams", "expected"),
    [
        pytest.param(
            ("nginx", "1", "1.14.1-9.module+el8.0.0+4108+af250afe"),
            ("nginx:1.14",),
            [],
            id="modular-nginx-ignores-non-modular-fix",
        ),
        pytest.param(("nginx", "1", "1.14.1-9.el8"), (), ["ALSA-2099:0300"], id="non-modular"),
        pytest.param(
            ("perl-DBI", "0", "1.641-4.module_el8.10.0+4000+cccccccc"),
            ("perl-DBI:1.641",),
            ["ALSA-2099:0400"],
            id="stream-fix-next-to-plain-fix-modular-host",
        ),
        pytest.param(
            ("perl-DBI", "0", "1.641-8.el8"),
            (),
            ["ALSA-2099:0400"],
            id="stream-fix-next-to-plain-fix-plain-host",
        ),
    ],
)
def test_modular_and_non_modular_builds_do_not_update_each_other(
    package: tuple[str, str, str], streams: tuple[str, ...], expected: list[str]
) -> None:
    """dnf's modular filtering: a module's packages take builds of that module only."""
    assert expected == missing(host(package, streams=streams))


def test_the_finding_names_the_build_of_the_hosts_stream() -> None:
    """The fixed version shown for a php:7.4 host is the php:7.4 build."""
    (finding,) = detect_missing(INDEX, host(PHP_HOST, streams=("php:7.4",)))
    assert ("php", f"0:7.4.33-{PHP74.split('-', 1)[1]}", PHP74_FIXED) == (
        finding.package,
        finding.installed,
        finding.fixed,
    )


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Low: php:7.4 security, bug fix, and enhancement update", "php:7.4"),
        ("Important: container-tools:rhel8 security update", "container-tools:rhel8"),
        ("Moderate: virt:rhel and virt-devel:rhel security update", None),
        ("Important: kernel security update", None),
        ("Moderate: nodejs:18 security update (nodejs:18)", "nodejs:18"),
    ],
)
def test_stream_in_title(title: str, expected: str | None) -> None:
    """The one `module:stream` an advisory title names, else None."""
    assert expected == modules.stream_in_title(title)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("php:7.4", "php:7.4"),
        ("php:7.4:8100020240102:a1b2c3d4", "php:7.4"),
        ("container-tools:rhel8", "container-tools:rhel8"),
    ],
)
def test_parse_stream(text: str, expected: str) -> None:
    """`name:stream` from a stream or a full NSVC."""
    assert expected == modules.parse_stream(text)


@pytest.mark.parametrize("text", ["php", ":7.4", "php 7.4", ""])
def test_parse_stream_refuses_what_is_not_a_stream(text: str) -> None:
    """Text without `name:stream` is a ValueError naming the expected form."""
    with pytest.raises(ValueError, match="name:stream"):
        modules.parse_stream(text)


def test_the_stream_survives_the_catalogue_round_trip() -> None:
    """A fixed package's stream is stored and read back with the record."""
    record = CATALOGUE[0]
    assert record == from_dict(to_dict(record))
    assert {"module": "php:7.4"}.items() <= to_dict(record)["packages"][0].items()  # type: ignore[index]
