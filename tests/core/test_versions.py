"""Version ordering: dpkg, rpm EVR and Windows builds, each pair checked in both directions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core import versions
from controller.core.patches import EventKind, RangeEvent

Compare = Callable[[str, str], int]

DPKG_OLDER_NEWER = [
    pytest.param("1.0", "1.1", id="plain"),
    pytest.param("1.0~rc1", "1.0", id="tilde-before-release"),
    pytest.param("1.0~~", "1.0~", id="double-tilde"),
    pytest.param("3.0.15-1~deb12u1", "3.0.15-1", id="backport-tilde-revision"),
    pytest.param("7.88.1-10+deb12u14", "7.88.1-10+deb12u15", id="deb12u-increments"),
    pytest.param("1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u7", id="epoch-and-security-suffix"),
    pytest.param("9.9-1", "1:1.0-1", id="epoch-wins"),
    pytest.param("5.2.15-2+b8", "5.2.15-2+b13", id="binnmu-numeric"),
    pytest.param("0.16.1-2", "0.16.1-2+b1", id="binnmu-after-plain"),
    pytest.param("2.9.14+dfsg-1.3~deb12u5", "2.9.14+dfsg-1.3~deb12u6", id="dfsg-and-tilde"),
    pytest.param("1.0a", "1.0+", id="letters-before-plus"),
    pytest.param("1.0", "1.0a", id="end-before-letters"),
    pytest.param("20230311+deb12u1", "20250419~deb12u2", id="date-versions"),
]
DPKG_EQUAL = [
    pytest.param("1.0", "1.0", id="identical"),
    pytest.param("0:1.0-1", "1.0-1", id="zero-epoch"),
    pytest.param("1.01", "1.1", id="leading-zero"),
]

RPM_OLDER_NEWER = [
    pytest.param("1.0", "2.0", id="plain"),
    pytest.param("2.0", "2.0.1", id="more-segments"),
    pytest.param("2.0.1", "2.0.1a", id="trailing-letter"),
    pytest.param("5.5p1", "5.5p10", id="numeric-in-alpha"),
    pytest.param("10xyz", "10.1xyz", id="separator-then-number"),
    pytest.param("6.0", "6.0.rc1", id="rc-is-newer-in-rpm"),
    pytest.param("1.0a", "1.0aa", id="longer-alpha"),
    pytest.param("10a2", "10b2", id="alpha-order"),
    pytest.param("4.999.9", "5.0", id="major-wins"),
    pytest.param("1.0~rc1", "1.0", id="tilde-before-release"),
    pytest.param("1.0~rc1", "1.0~rc2", id="tilde-tilde"),
    pytest.param("1.0~rc1~git123", "1.0~rc1", id="double-tilde"),
    pytest.param("1.0", "1.0^", id="caret-after-release"),
    pytest.param("1.0", "1.0^git1", id="caret-snapshot"),
    pytest.param("1.0^git1", "1.01", id="caret-before-next"),
    pytest.param("1.0^20160101^git1", "1.0^20160102", id="caret-caret"),
    pytest.param("1.0~rc1", "1.0~rc1^git1", id="tilde-then-caret"),
    pytest.param("0:5.14.0-427.13.1.el9_4", "0:5.14.0-427.18.1.el9_4", id="kernel-release"),
    pytest.param("0:1.13.0-9.el8", "0:1.13.0-9.el8_9.1", id="z-stream-release"),
    pytest.param("4.4.1-21.el9_2", "2:4.4.1-21.el9_2", id="epoch-over-missing"),
    pytest.param("2:4.4.1-21.el9_2", "3:1.0-1.el9", id="epoch-wins"),
    pytest.param("0:2.1-1.el9", "0:2.1-1.el9.alma", id="rebuild-suffix"),
]
RPM_EQUAL = [
    pytest.param("1.0", "1.0", id="identical"),
    pytest.param("10.0001", "10.1", id="leading-zeros"),
    pytest.param("2_0", "2.0", id="separators-equal"),
    pytest.param("a+", "a_", id="punctuation-equal"),
    pytest.param("1.1.\u03b1", "1.1.\u03b2", id="non-ascii-is-separator"),
    pytest.param("0:1.0-1", "1.0-1", id="missing-epoch-is-zero"),
    pytest.param("1.0", "0:1.0-5.el9", id="release-ignored-when-one-side-lacks-it"),
]

WINDOWS_OLDER_NEWER = [
    pytest.param("10.0.17763.5328", "10.0.17763.5329", id="revision"),
    pytest.param("10.0.17763.999", "10.0.17763.5329", id="numeric-not-text"),
    pytest.param("10.0.19044.3930", "10.0.19045.3930", id="build-line"),
    pytest.param("6.3.9600", "6.3.9600.21765", id="missing-revision-is-zero"),
]


def swap(older: str, newer: str, *, reverse: bool) -> tuple[str, str, int]:
    return (newer, older, 1) if reverse else (older, newer, -1)


@pytest.mark.parametrize("reverse", [False, True], ids=["older-first", "newer-first"])
@pytest.mark.parametrize(("older", "newer"), DPKG_OLDER_NEWER)
def test_dpkg_order(older: str, newer: str, *, reverse: bool) -> None:
    """dpkg orders the pair the same way from either side."""
    a, b, expected = swap(older, newer, reverse=reverse)
    assert expected == versions.compare_dpkg(a, b)


@pytest.mark.parametrize(("a", "b"), DPKG_EQUAL)
def test_dpkg_equal(a: str, b: str) -> None:
    """Spellings dpkg considers the same version compare equal."""
    assert (0, 0) == (versions.compare_dpkg(a, b), versions.compare_dpkg(b, a))


@pytest.mark.parametrize("reverse", [False, True], ids=["older-first", "newer-first"])
@pytest.mark.parametrize(("older", "newer"), RPM_OLDER_NEWER)
def test_rpm_order(older: str, newer: str, *, reverse: bool) -> None:
    """rpm EVR ordering (rpmvercmp) orders the pair the same way from either side."""
    a, b, expected = swap(older, newer, reverse=reverse)
    assert expected == versions.compare_rpm(a, b)


@pytest.mark.parametrize(("a", "b"), RPM_EQUAL)
def test_rpm_equal(a: str, b: str) -> None:
    """Spellings rpm considers the same version compare equal."""
    assert (0, 0) == (versions.compare_rpm(a, b), versions.compare_rpm(b, a))


@pytest.mark.parametrize("reverse", [False, True], ids=["older-first", "newer-first"])
@pytest.mark.parametrize(("older", "newer"), WINDOWS_OLDER_NEWER)
def test_windows_build_order(older: str, newer: str, *, reverse: bool) -> None:
    """Builds compare numerically, component by component."""
    a, b, expected = swap(older, newer, reverse=reverse)
    assert expected == versions.compare_windows_build(a, b)


@pytest.mark.parametrize(
    ("build", "line"),
    [
        pytest.param("10.0.17763.5329", (10, 0, 17763), id="server-2019"),
        pytest.param("4.8.04690.02", (4, 8, 4690), id="dotnet-is-its-own-line"),
        pytest.param("1.001", None, id="too-short"),
        pytest.param("10.0.x.1", None, id="not-numeric"),
    ],
)
def test_windows_build_line(build: str, line: tuple[int, int, int] | None) -> None:
    """The first three components name the OS line a build belongs to."""
    assert line == versions.windows_build_line(build)


@pytest.mark.parametrize(
    ("compare", "a", "b"),
    [
        pytest.param(versions.compare_dpkg, "", "1.0", id="dpkg-empty"),
        pytest.param(versions.compare_dpkg, "1 0", "1.0", id="dpkg-space"),
        pytest.param(versions.compare_windows_build, "10.0.a", "10.0.1", id="windows-letters"),
    ],
)
def test_invalid_versions_raise_value_error(compare: Compare, a: str, b: str) -> None:
    """A string that is not a version of the scheme raises ValueError, never a wrong order."""
    with pytest.raises(ValueError, match=r"version|build"):
        compare(a, b)


@pytest.mark.parametrize(
    ("release", "scheme"),
    [
        pytest.param("debian:12", versions.Scheme.DPKG, id="debian"),
        pytest.param("ubuntu:24.04", versions.Scheme.DPKG, id="ubuntu"),
        pytest.param("rhel:9", versions.Scheme.RPM, id="rhel"),
        pytest.param("almalinux:9", versions.Scheme.RPM, id="almalinux"),
        pytest.param("amzn:2023", versions.Scheme.RPM, id="amazon"),
        pytest.param("alpine:3.18", None, id="alpine-unsupported"),
        pytest.param("", None, id="no-release"),
    ],
)
def test_scheme_for_release(release: str, scheme: versions.Scheme | None) -> None:
    """A release key names the ordering of its packages."""
    assert scheme == versions.scheme_for_release(release)


@pytest.mark.parametrize(
    ("parts", "dpkg", "evr"),
    [
        pytest.param(("3.134", None, None), "3.134", "0:3.134", id="version-only"),
        pytest.param(("43", None, "1"), "43-1", "0:43-1", id="split-revision"),
        pytest.param(
            ("9.2p1", "1", "2+deb12u6"), "1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u6", id="all"
        ),
        pytest.param(("1.0", "0", "1"), "1.0-1", "0:1.0-1", id="zero-epoch"),
        pytest.param(("1:2.0", "1", "3"), "1:2.0-3", "1:2.0-3", id="epoch-already-inline"),
    ],
)
def test_joining_inventory_parts(
    parts: tuple[str, str | None, str | None], dpkg: str, evr: str
) -> None:
    """Agents report version parts apart; they join into each scheme's own syntax."""
    version, epoch, release = parts
    assert (dpkg, evr) == (
        versions.join_dpkg(version, epoch=epoch, revision=release),
        versions.join_evr(version, epoch=epoch, release=release),
    )


# --- OSV ranges (ossf.github.io/osv-schema, "Evaluation") ---------------------------------------

IN, FX, LA, LIM = EventKind.INTRODUCED, EventKind.FIXED, EventKind.LAST_AFFECTED, EventKind.LIMIT


def events(*pairs: tuple[EventKind, str]) -> tuple[RangeEvent, ...]:
    return tuple(RangeEvent(kind, version) for kind, version in pairs)


TWO_INTERVALS = events((IN, "0"), (FX, "2.0-1"), (IN, "2.1-1"), (FX, "2.1-3"))


@pytest.mark.parametrize(
    ("scheme", "installed", "ranges", "listed", "expected"),
    [
        pytest.param(
            versions.Scheme.DPKG, "1.9", [TWO_INTERVALS], (), "2.0-1", id="issue-below-first-fix"
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "2.0-1",
            [TWO_INTERVALS],
            (),
            None,
            id="issue-at-first-fix-not-affected",
        ),
        pytest.param(
            versions.Scheme.DPKG, "2.0-5", [TWO_INTERVALS], (), None, id="issue-between-intervals"
        ),
        pytest.param(
            versions.Scheme.DPKG, "2.1-2", [TWO_INTERVALS], (), "2.1-3", id="issue-second-interval"
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "2.1-1",
            [TWO_INTERVALS],
            (),
            "2.1-3",
            id="introduced-is-inclusive",
        ),
        pytest.param(versions.Scheme.DPKG, "2.1-3", [TWO_INTERVALS], (), None, id="at-second-fix"),
        pytest.param(
            versions.Scheme.DPKG,
            "1.9",
            [events((FX, "2.1-3"), (IN, "2.1-1"), (FX, "2.0-1"), (IN, "0"))],
            (),
            "2.0-1",
            id="events-in-any-order",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "2.0-5",
            [events((FX, "2.1-3"), (IN, "2.1-1"), (FX, "2.0-1"), (IN, "0"))],
            (),
            None,
            id="unordered-between-intervals",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "2.0-5",
            [events((IN, "0"), (FX, "2.0-1")), events((IN, "2.1-1"), (FX, "2.1-3"))],
            (),
            None,
            id="two-ranges-between",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "2.1-2",
            [events((IN, "0"), (FX, "2.0-1")), events((IN, "2.1-1"), (FX, "2.1-3"))],
            (),
            "2.1-3",
            id="two-ranges-second",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.5",
            [events((IN, "1.0"), (FX, "2.0"))],
            (),
            "2.0",
            id="introduced-above-zero-inside",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "0.9",
            [events((IN, "1.0"), (FX, "2.0"))],
            (),
            None,
            id="introduced-above-zero-before",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.5",
            [events((IN, "0"), (LA, "1.5")), events((IN, "0"), (FX, "2.0"))],
            (),
            "2.0",
            id="last-affected-inclusive-fix-from-other-range",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.6",
            [events((IN, "0"), (LA, "1.5"))],
            (),
            None,
            id="after-last-affected",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.4",
            [events((IN, "0"), (LA, "1.5"))],
            (),
            None,
            id="affected-but-no-fix",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.8",
            [events((IN, "0"), (FX, "2.0"), (LIM, "1.7"))],
            (),
            None,
            id="at-or-above-limit",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.6",
            [events((IN, "0"), (FX, "2.0"), (LIM, "1.7"))],
            (),
            "2.0",
            id="below-limit",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "1.8",
            [events((IN, "0"), (FX, "2.0"), (LIM, "*"))],
            (),
            "2.0",
            id="limit-star-is-none",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "0.5",
            [events((IN, "1.0"), (FX, "2.0"))],
            ("0.5",),
            "2.0",
            id="listed-version-outside-ranges",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "0.6",
            [events((IN, "1.0"), (FX, "2.0"))],
            ("0.5",),
            None,
            id="unlisted-version-outside-ranges",
        ),
        pytest.param(
            versions.Scheme.DPKG,
            "not a version!",
            [TWO_INTERVALS],
            (),
            None,
            id="unparseable-never-affected",
        ),
        pytest.param(
            versions.Scheme.RPM,
            "0:2.1-2.el9",
            [events((IN, "0"), (FX, "0:2.0-1.el9"), (IN, "0:2.1-1.el9"), (FX, "0:2.1-3.el9"))],
            (),
            "0:2.1-3.el9",
            id="rpm-second-interval",
        ),
        pytest.param(
            versions.Scheme.RPM,
            "0:2.0-1.el9",
            [events((IN, "0"), (FX, "0:2.0-1.el9"), (IN, "0:2.1-1.el9"), (FX, "0:2.1-3.el9"))],
            (),
            None,
            id="rpm-at-first-fix",
        ),
        pytest.param(
            versions.Scheme.RPM,
            "1:1.0-1.el9",
            [events((IN, "0"), (FX, "0:2.0-1.el9"))],
            (),
            None,
            id="rpm-epoch-above-fix",
        ),
    ],
)
def test_affected_fix_follows_the_osv_evaluation(
    scheme: versions.Scheme,
    installed: str,
    ranges: list[tuple[RangeEvent, ...]],
    listed: tuple[str, ...],
    expected: str | None,
) -> None:
    """An installed version is affected by the ranges' intervals or the list, and gets the fix that closes its interval."""
    assert expected == versions.affected_fix(scheme, installed, ranges, listed)
