"""CSAF 2.0 product trees in every layout the standard allows (issue 17, item 4).

Products may sit at the leaves of `branches`, in `product_tree.full_product_names`, or be built by
`relationships`; ids may be opaque (`CSAFPID-0002`) with the package named only by its purl or the
platform by its CPE. Every layout must give the same fixed packages, and an advisory that names
nothing a host can match is imported with a warning instead of silently.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.core.applicability import (
    ApplicabilityIndex,
    InstalledPackage,
    Inventory,
    detect_missing,
)
from controller.core.patches import FixedPackage
from controller.feeds import FeedError, read_feed
from controller.kinds.common import OsFamily
from controller.kinds.feeds import FeedFormat

if TYPE_CHECKING:
    from pathlib import Path

RHEL9 = {"cpe": "cpe:/o:redhat:enterprise_linux:9::baseos"}
OPENSSL_PURL = {"purl": "pkg:rpm/redhat/openssl@3.0.7-27.el9?arch=x86_64&epoch=1"}
OPENSSL = FixedPackage("openssl", "1:3.0.7-27.el9", "rhel:9", "x86_64")


def product(product_id: str, name: str, helper: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"product_id": product_id, "name": name}
    if helper:
        found["product_identification_helper"] = helper
    return found


def relationship(package: str, platform: str, result: str, category: str) -> dict[str, Any]:
    return {
        "category": category,
        "product_reference": package,
        "relates_to_product_reference": platform,
        "full_product_name": {"product_id": result, "name": f"{package} on {platform}"},
    }


def csaf(tree: dict[str, Any], status: dict[str, list[str]]) -> dict[str, Any]:
    """A CSAF 2.0 security advisory with one vulnerability."""
    return {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "title": "openssl security update",
            "publisher": {
                "category": "vendor",
                "name": "Example Vendor",
                "namespace": "https://example.org",
            },
            "tracking": {
                "id": "EXA-2099:0001",
                "status": "final",
                "version": "1",
                "initial_release_date": "2099-07-01T00:00:00Z",
                "current_release_date": "2099-07-01T00:00:00Z",
                "revision_history": [
                    {"date": "2099-07-01T00:00:00Z", "number": "1", "summary": "Initial"}
                ],
            },
        },
        "product_tree": tree,
        "vulnerabilities": [{"cve": "CVE-2099-8001", "product_status": status}],
    }


def write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "exa-2099_0001.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


LAYOUTS = [
    pytest.param(
        {
            "full_product_names": [
                product("CSAFPID-0001", "Enterprise Linux 9", RHEL9),
                product("CSAFPID-0002", "openssl", OPENSSL_PURL),
            ],
            "relationships": [
                relationship("CSAFPID-0002", "CSAFPID-0001", "CSAFPID-0003", "default_component_of")
            ],
        },
        {"fixed": ["CSAFPID-0003"]},
        (OPENSSL,),
        id="full-product-names-opaque-ids-relationship",
    ),
    pytest.param(
        {"full_product_names": [product("CSAFPID-0002", "openssl", OPENSSL_PURL)]},
        {"fixed": ["CSAFPID-0002"]},
        (OPENSSL,),
        id="full-product-names-purl-only-dist-tag",
    ),
    pytest.param(
        {
            "full_product_names": [
                product(
                    "CSAFPID-0002",
                    "openssl",
                    {"purl": "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"},
                )
            ]
        },
        {"first_fixed": ["CSAFPID-0002"]},
        (FixedPackage("openssl", "3.0.15-1~deb12u1", "debian:12", "amd64"),),
        id="deb-purl-distro-qualifier-first-fixed",
    ),
    pytest.param(
        {
            "branches": [
                {
                    "category": "vendor",
                    "name": "Canonical",
                    "branches": [
                        {
                            "category": "product_name",
                            "name": "Ubuntu 24.04 LTS",
                            "product": product(
                                "CSAFPID-0001",
                                "Ubuntu 24.04 LTS",
                                {"cpe": "cpe:2.3:o:canonical:ubuntu_linux:24.04:*:*:*:lts:*:*:*"},
                            ),
                        },
                        {
                            "category": "product_name",
                            "name": "libssl3",
                            "branches": [
                                {
                                    "category": "product_version",
                                    "name": "3.0.13-0ubuntu3.5",
                                    "branches": [
                                        {
                                            "category": "architecture",
                                            "name": "amd64",
                                            "product": product(
                                                "CSAFPID-0002", "libssl3 3.0.13-0ubuntu3.5 amd64"
                                            ),
                                        }
                                    ],
                                }
                            ],
                        },
                    ],
                }
            ],
            "relationships": [
                relationship("CSAFPID-0002", "CSAFPID-0001", "CSAFPID-0003", "installed_on")
            ],
        },
        {"recommended": ["CSAFPID-0003"]},
        (FixedPackage("libssl3", "3.0.13-0ubuntu3.5", "ubuntu:24.04", "amd64"),),
        id="branch-path-names-package-cpe23-installed-on-recommended",
    ),
    pytest.param(
        {
            "branches": [
                {
                    "category": "vendor",
                    "name": "Red Hat",
                    "branches": [
                        {
                            "category": "product_name",
                            "name": "RHEL 9",
                            "product": product("BaseOS-9", "RHEL 9", RHEL9),
                        },
                        {
                            "category": "architecture",
                            "name": "x86_64",
                            "product": product(
                                "openssl-1:3.0.7-27.el9.x86_64", "openssl-1:3.0.7-27.el9.x86_64"
                            ),
                        },
                    ],
                }
            ],
            "relationships": [
                relationship(
                    "openssl-1:3.0.7-27.el9.x86_64",
                    "BaseOS-9",
                    "BaseOS-9:openssl-1:3.0.7-27.el9.x86_64",
                    "default_component_of",
                )
            ],
        },
        {"fixed": ["BaseOS-9:openssl-1:3.0.7-27.el9.x86_64"]},
        (OPENSSL,),
        id="red-hat-nevra-ids-in-branches",
    ),
]


@pytest.mark.parametrize(("tree", "status", "expected"), LAYOUTS)
def test_product_tree_layouts_resolve_to_packages(
    tmp_path: Path,
    tree: dict[str, Any],
    status: dict[str, list[str]],
    expected: tuple[FixedPackage, ...],
) -> None:
    """Every layout yields its fixed package with name, version, release and arch, and no error or warning."""
    result = read_feed(write(tmp_path, csaf(tree, status)), FeedFormat.CSAF)

    (record,) = result.records
    assert (expected, (), ()) == (record.packages, result.errors, result.warnings)


def test_opaque_ids_flag_an_older_host(tmp_path: Path) -> None:
    """The issue's document (opaque ids, package named only by its purl) flags a RHEL 9 host with the older package."""
    tree, status, _ = LAYOUTS[0].values
    (record,) = read_feed(write(tmp_path, csaf(tree, status)), FeedFormat.CSAF).records
    host = Inventory(
        os=OsFamily.LINUX,
        release="rhel:9",
        packages=(InstalledPackage("openssl", "3.0.7", "x86_64", "1", "25.el9"),),
    )

    findings = detect_missing(ApplicabilityIndex([record]), host)

    assert [("EXA-2099:0001", "1:3.0.7-25.el9", "1:3.0.7-27.el9")] == [
        (f.patch_id, f.installed, f.fixed) for f in findings
    ]


@pytest.mark.parametrize(
    ("tree", "status", "expected"),
    [
        pytest.param(
            {
                "full_product_names": [
                    product(
                        "CSAFPID-0002", "an image", {"purl": "pkg:oci/app@sha256:abc?arch=amd64"}
                    )
                ]
            },
            {"fixed": ["CSAFPID-0002"]},
            [
                (
                    "/vulnerabilities/0/product_status/fixed/0",
                    "EXA-2099:0001 can match no host: none of its 1 fixed product id(s) names an OS package with a release (container images, source packages and products without purl, NEVRA or platform CPE are not host packages)",
                )
            ],
            id="container-image-only",
        ),
        pytest.param(
            {
                "full_product_names": [
                    product(
                        "CSAFPID-0002",
                        "openssl",
                        {"purl": "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64"},
                    )
                ]
            },
            {"fixed": ["CSAFPID-0002"]},
            [
                (
                    "/vulnerabilities/0/product_status/fixed/0",
                    "EXA-2099:0001 can match no host: none of its 1 fixed product id(s) names an OS package with a release (container images, source packages and products without purl, NEVRA or platform CPE are not host packages)",
                )
            ],
            id="package-without-release",
        ),
        pytest.param(
            {"full_product_names": [product("CSAFPID-0002", "openssl", OPENSSL_PURL)]},
            {"known_affected": ["CSAFPID-0002"]},
            [
                (
                    "/vulnerabilities",
                    "EXA-2099:0001 can match no host: no vulnerability lists a fixed, first_fixed or recommended product",
                ),
                (
                    "/vulnerabilities/0/product_status/known_affected/0",
                    "1 known_affected package(s) have no fix in this advisory: nothing to install for them",
                ),
            ],
            id="known-affected-without-fix",
        ),
        pytest.param(
            {"full_product_names": [product("CSAFPID-0002", "openssl", OPENSSL_PURL)]},
            {"fixed": ["CSAFPID-9999"]},
            [
                (
                    "/vulnerabilities/0/product_status/fixed/0",
                    "EXA-2099:0001 can match no host: none of its 1 fixed product id(s) names an OS package with a release (container images, source packages and products without purl, NEVRA or platform CPE are not host packages)",
                )
            ],
            id="unknown-product-id",
        ),
    ],
)
def test_advisory_matching_no_host_is_a_warning(
    tmp_path: Path,
    tree: dict[str, Any],
    status: dict[str, list[str]],
    expected: list[tuple[str, str]],
) -> None:
    """An advisory that yields nothing a host can match still imports, with a warning at the product status that failed."""
    path = write(tmp_path, csaf(tree, status))

    result = read_feed(path, FeedFormat.CSAF)

    assert ([(), ()], [FeedError(str(path), *w) for w in expected]) == (
        [result.records[0].packages, result.errors],
        list(result.warnings),
    )


def test_cli_import_prints_the_warning(tmp_path: Path) -> None:
    """`patchctl feed import` shows the warning and counts it, instead of a silent "1 new, 0 failed"."""
    tree = {
        "full_product_names": [
            product("CSAFPID-0002", "an image", {"purl": "pkg:oci/app@sha256:abc"})
        ]
    }
    path = write(tmp_path, csaf(tree, {"fixed": ["CSAFPID-0002"]}))
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"

    result = CliRunner().invoke(
        main, ["feed", "import", str(path), "--format", "csaf", "--db", url]
    )

    assert (0, True, True) == (
        result.exit_code,
        f"warning: {path}:/vulnerabilities/0/product_status/fixed/0: EXA-2099:0001 can match no host"
        in result.output,
        f"{path}: 1 new, 0 updated, 0 unchanged, 0 failed, 1 warnings" in result.output,
    )


@pytest.mark.parametrize(
    ("status", "position", "message"),
    [
        pytest.param(
            {"fixed": [7]},
            "/vulnerabilities/0/product_status/fixed/0",
            "expected a product id (text)",
            id="number-id",
        ),
        pytest.param(
            {"fixed": "CSAFPID-0002"},
            "/vulnerabilities/0/product_status/fixed",
            "expected a list, got text",
            id="not-a-list",
        ),
    ],
)
def test_malformed_product_status_is_located(
    tmp_path: Path, status: dict[str, Any], position: str, message: str
) -> None:
    """A product status that is not a list of ids is an error at its pointer, and nothing imports."""
    tree = {"full_product_names": [product("CSAFPID-0002", "openssl", OPENSSL_PURL)]}
    path = write(tmp_path, csaf(tree, status))

    result = read_feed(path, FeedFormat.CSAF)

    assert ((), (FeedError(str(path), position, message),)) == (result.records, result.errors)


def test_full_product_name_without_id_is_located(tmp_path: Path) -> None:
    """A product of `full_product_names` without `product_id` is an error at its own pointer."""
    tree = {"full_product_names": [product("CSAFPID-0001", "a"), {"name": "no id"}]}
    path = write(tmp_path, csaf(tree, {"fixed": ["CSAFPID-0001"]}))

    result = read_feed(path, FeedFormat.CSAF)

    expected = FeedError(
        str(path), "/product_tree/full_product_names/1/product_id", "required field is missing"
    )
    assert ((), (expected,)) == (result.records, result.errors)
