"""Module streams (RHEL 8+ family "AppStream" modularity): which fixed build can update a package.

Purely computational, no side effects. A module (`php`) ships several streams side by side
(`php:7.4`, `php:8.2`); a host enables one stream per module, and dnf then updates the module's
packages only from builds of that stream (modular filtering hides every other stream's builds
and the non-modular builds of the same names). Advisories list the fixed builds of each stream
they update, so one advisory can name `php-7.4.33-…` and `php-8.2.25-…`, or the same stream
built in several contexts (`libzip-1.6.1-1.module_el8.6.0+2750+78feabcb` and
`…module_el8.10.0+3935+28808425`).

Where the stream comes from:
- hosts: `inventory.moduleStreams` (`["php:7.4"]`, from `/etc/dnf/modules.d/*.module` or
  `dnf module list --enabled`); None when the agent did not say;
- feeds: updateinfo `<collection><module name= stream=/>`, CSAF product ids and purls of modular
  packages (`…:php:7.4:8100020240102:a1b2c3d4:php-0:7.4.33-…`, purl qualifier `rpmmod=php:7.4:…`),
  the `module:stream` an OSV title names (`Low: php:7.4 security update`).
- both: the modularity marker of a build's release (`.module+el8.10.0+…` on RHEL and Rocky,
  `.module_el8.10.0+…` on AlmaLinux, `.module_f39+…` on Fedora) says *that* it is modular, not
  which stream it belongs to.

Rule (`fix_applies`): a fix of a known stream applies when the host runs that stream; when the
host names another stream of that module, it does not; when the host did not report streams (or
names no stream of that module), the marker decides: modular builds update modular packages,
non-modular builds non-modular ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

# The marker MBS (the module build service) puts in the release of every modular build.
_MARKER = re.compile(r"\.module[+_][a-z]+\d")
# `name:stream` as dnf spells it (`dnf module enable php:7.4`); names and streams are
# [A-Za-z0-9_.+-] (modulemd specification), a stream may be `rhel8` or `1.14`.
_STREAM = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.+-]*):(?P<stream>[A-Za-z0-9][A-Za-z0-9_.+-]*)"
)
# In an advisory title: `php:7.4`, `container-tools:rhel8` between blanks or punctuation;
# `Important: php` (a severity prefix) has a blank after the colon and is not one.
_TITLE_STREAM = re.compile(r"(?<![\w.+:-])([a-z0-9][a-z0-9_.+-]*:[a-z0-9][a-z0-9_.+-]*)(?![\w+:-])")


def is_modular(version: str | None) -> bool:
    """Whether a release or full version carries the modularity marker
    (`7.4.33-1.module+el8.10.0+21000+abcdef12`)."""
    return bool(version) and _MARKER.search(version or "") is not None


def parse_stream(text: str) -> str:
    """`php:7.4` from `php:7.4` or a longer NSVC (`php:7.4:8100020240102:a1b2c3d4`).

    Raises ValueError when the text does not start with `name:stream`.
    """
    match = _STREAM.match(text.strip())
    if match is None:
        msg = f"expected a module stream as `name:stream` (e.g. php:7.4), got {text[:60]!r}"
        raise ValueError(msg)
    return f"{match['name']}:{match['stream']}"


def module_name(stream: str) -> str:
    """`php` for `php:7.4`."""
    return stream.split(":", 1)[0]


def stream_in_title(title: str) -> str | None:
    """The one `module:stream` an advisory title names (`Low: php:7.4 security update` ->
    `php:7.4`), None when it names none or several (`virt:rhel and virt-devel:rhel`)."""
    found = {match.lower() for match in _TITLE_STREAM.findall(title)}
    return found.pop() if len(found) == 1 else None


def enabled_by_module(streams: Iterable[str]) -> dict[str, str]:
    """`{"php": "php:7.4"}` for the host's enabled streams."""
    return {module_name(stream): stream for stream in streams}


def fix_applies(
    *,
    fix_stream: str | None,
    fix_version: str,
    installed_version: str,
    host_streams: dict[str, str] | None,
) -> bool:
    """Whether a fixed build can update an installed package, by module stream (module rule).

    `fix_stream` is the fixed build's `name:stream` when the feed said it, `host_streams` the
    host's enabled streams by module name (`enabled_by_module`), None when it did not report
    them; versions are the ecosystem's full versions (`0:7.4.33-1.module_el8.10.0+…`).
    """
    if fix_stream is not None and host_streams is not None:
        enabled = host_streams.get(module_name(fix_stream))
        if enabled is not None:
            return enabled == fix_stream
    fix_modular = fix_stream is not None or is_modular(fix_version)
    return fix_modular == is_modular(installed_version)
