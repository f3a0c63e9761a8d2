"""What every feed importer shares: results, positioned errors, safe parsing, vendor words.

Importers read files; everything else here is computational. Errors are values: a malformed record
becomes a `FeedError` naming the file and the position (line and column, a JSON pointer or an XML
element path), and the rest of the feed still imports.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree.ElementTree import ParseError

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _safe_fromstring

from controller import errors, jsontext
from controller.kinds.common import Classification, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from xml.etree.ElementTree import Element

    from controller.core.patches import PatchRecord

# A feed file larger than this once decompressed is refused: it protects the controller from
# compression bombs. The largest real document (an MSRC month) is under 2 MiB.
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FeedError:
    """A problem found while importing: which file, where in it, and what was expected."""

    file: str
    position: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.position}" if self.position else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class FeedResult:
    """The records a feed yielded, the errors met on the way (records that were not imported),
    and warnings (records that imported but cannot do what the operator expects, such as an
    advisory that can match no host); all in file order.

    `failed` counts the records (or whole documents) that did not import, each once however
    many errors name it: a native record with a bad severity and an unknown field is two errors
    and one failed record. `documents` counts the files read (0: the path held none of the
    format's files).
    """

    records: tuple[PatchRecord, ...] = ()
    errors: tuple[FeedError, ...] = ()
    warnings: tuple[FeedError, ...] = ()
    failed: int = 0
    documents: int = 0
    # Severities a feed publishes per CVE apart from its advisories (Debian's tracker urgency):
    # (release, package, CVE id) -> severity; `read_feed` applies them to the records it read.
    cve_severities: Mapping[tuple[str, str, str], Severity] = field(default_factory=dict)

    @classmethod
    def failure(cls, file: str, position: str, message: str) -> FeedResult:
        """The result of a document that could not be read at all: one error, one failure."""
        return cls(errors=(FeedError(file, position, message),), failed=1)


class RecordError(errors.NeedsHumanError):
    """One record (or document) cannot be imported; `position` says where."""

    def __init__(self, position: str, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


class FormatReader(Protocol):
    """What a format module offers to `read_feed`."""

    def accepts(self, path: Path) -> bool:
        """Whether a file found in a feed directory is of this format."""
        ...

    def parse_file(self, path: Path, *, name: str, release: str | None) -> FeedResult:
        """Every record of one file; `name` is the file as errors and `source` show it."""
        ...


# --- reading ------------------------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it ends in .gz, .xz or .bz2 (as repositories ship it).

    Raises RecordError when the file cannot be read or is larger than `MAX_FILE_BYTES`.
    """
    try:
        with _open(path) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise RecordError("", f"cannot read the file: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise RecordError("", f"larger than {MAX_FILE_BYTES} bytes (decompressed); refused")
    return data


def _open(path: Path) -> io.BufferedIOBase:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".xz":
        return lzma.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    return path.open("rb")


def load_json(data: bytes) -> Any:
    """Parsed JSON (RFC 8259); RecordError at the line and column of a syntax error.

    `NaN`, `Infinity` and `-Infinity` are refused (they are not JSON, and a version or score
    read from them would be nonsense), as are integers longer than Python converts, nesting
    deeper than the interpreter's recursion limit, and an object naming a member twice (which
    value a vendor meant is unknowable; `json` would keep the last: `controller.jsontext`).
    """
    try:
        parsed = json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RecordError(where, f"invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise RecordError(f"byte {exc.start}", "not UTF-8 text") from None
    except _NotJsonError as exc:
        raise RecordError("", f"invalid JSON: {exc} is not a JSON value") from None
    except RecursionError:
        raise RecordError("", "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than int() accepts
        raise RecordError("", f"invalid JSON: {exc}") from None
    repeated = jsontext.duplicate_key(data)
    if repeated is not None:
        where = f"line {repeated.line}, column {repeated.column}"
        raise RecordError(where, f"invalid JSON: {repeated}")
    return parsed


class _NotJsonError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJsonError(name)


_XML_POSITION = re.compile(r": line \d+, column \d+$")


def parse_xml(data: bytes) -> Element:
    """The root element, parsed with defusedxml: entity declarations and external references are
    refused (billion-laughs and XXE), so a hostile feed cannot exhaust memory or read files."""
    try:
        root: Element = _safe_fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        name = getattr(exc, "name", None) or "?"
        message = f"refused: declares the XML entity {name!r} (entities are never expanded)"
        raise RecordError("", message) from None
    except ParseError as exc:
        line, column = exc.position
        reason = _XML_POSITION.sub("", str(exc))
        raise RecordError(f"line {line}, column {column + 1}", f"invalid XML: {reason}") from None
    except LookupError as exc:  # <?xml encoding="…"?> names an encoding Python does not know
        raise RecordError("line 1", f"invalid XML declaration: {exc}") from None
    except ValueError as exc:  # e.g. "multi-byte encodings are not supported"
        raise RecordError("line 1", f"invalid XML: {exc}") from None
    return root


def local_name(element: Element) -> str:
    """The tag without its namespace: `Vulnerability` for `{http://...vuln/1.1}Vulnerability`."""
    return element.tag.rsplit("}", 1)[-1]


# --- JSON access with positions ------------------------------------------------------------


def pointer(base: str, *parts: str | int) -> str:
    """A JSON pointer (RFC 6901): `pointer("/affected", 0, "package")` is `/affected/0/package`."""
    # Called for every field read (errors must be able to say where), so kept cheap.
    out = base
    for part in parts:
        text = str(part)
        if "~" in text or "/" in text:
            text = text.replace("~", "~0").replace("/", "~1")
        out = f"{out}/{text}"
    return out


def get_dict(obj: dict[str, Any], key: str, at: str) -> dict[str, Any]:
    """`obj[key]` as an object ({} when absent); RecordError at its pointer when it is not one."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(pointer(at, key), f"expected an object, got {_kind(value)}")
    return value


def get_list(obj: dict[str, Any], key: str, at: str) -> list[Any]:
    """`obj[key]` as a list ([] when absent); RecordError at its pointer when it is not one."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(pointer(at, key), f"expected a list, got {_kind(value)}")
    return value


def get_str(obj: dict[str, Any], key: str, at: str, *, required: bool = False) -> str:
    """`obj[key]` as text ("" when absent and optional); numbers are accepted as their text."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise RecordError(pointer(at, key), "required field is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(pointer(at, key), f"expected text, got {_kind(value)}")
    return str(value)


def require_object(value: Any, at: str) -> dict[str, Any]:
    """`value` when it is a JSON object; RecordError otherwise."""
    if not isinstance(value, dict):
        raise RecordError(at or "/", f"expected an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# --- dates --------------------------------------------------------------------------------

_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
# Seconds since the epoch beyond this (the year 5138) are not seconds: a 13-digit value is the
# milliseconds some generators write, and guessing the unit would silently move the date.
_MAX_EPOCH_SECONDS = 10**11
_DATE_FORMS = "YYYY-MM-DD, ISO 8601 or seconds since 1970"


def read_date(text: str | None, at: str) -> date | None:
    """The calendar date of a feed's timestamp; None when absent or empty.

    RecordError at `at` when a value is present but is no date (`2024-02-30`, epoch
    milliseconds, `yesterday`): a record with a wrong release date would be approved on the
    wrong day, so it is reported rather than guessed.
    """
    if not text or not text.strip():
        return None
    _check_epoch(text.strip(), at)
    value = parse_date(text)
    if value is None:
        raise RecordError(at, f"not a date: {text.strip()[:40]!r} (expected {_DATE_FORMS})")
    return value


def read_datetime(text: str | None, at: str) -> datetime | None:
    """Like `read_date`, for a timestamp (an aware UTC datetime)."""
    if not text or not text.strip():
        return None
    _check_epoch(text.strip(), at)
    if _DATE_PREFIX.match(text.strip()) and parse_date(text) is None:
        raise RecordError(at, f"not a date: {text.strip()[:40]!r} (expected {_DATE_FORMS})")
    value = parse_datetime(text)
    if value is None:
        raise RecordError(at, f"not a date: {text.strip()[:40]!r} (expected {_DATE_FORMS})")
    return value


def _check_epoch(value: str, at: str) -> None:
    if _is_number(value) and int(value) >= _MAX_EPOCH_SECONDS:
        message = (
            f"not a date: {value[:40]!r} is too large for seconds since 1970"
            " (epoch milliseconds are not accepted; expected seconds)"
        )
        raise RecordError(at, message)


def parse_datetime(text: str | None) -> datetime | None:
    """An aware UTC datetime from the spellings feeds use; naive times are taken as UTC.

    Accepts ISO 8601 (`2024-09-12T10:01:43Z`), yum's `2021-07-22 18:25:24` and `2018-01-11 21:05`,
    and seconds since the epoch (`1168860391`, some updateinfo.xml files). None when unparseable.
    """
    if not text or not text.strip():
        return None
    value = text.strip()
    if _is_number(value):
        return _from_epoch(value)
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        # `astimezone` overflows for year 1 with a positive offset, year 9999 with a negative one
        day = parse_date(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


def _is_number(value: str) -> bool:
    # ASCII only: `str.isdigit` is also true for `²`, which `int` refuses.
    return value.isascii() and value.isdigit()


def _from_epoch(digits: str) -> datetime | None:
    if int(digits) >= _MAX_EPOCH_SECONDS:
        return None
    try:
        return datetime.fromtimestamp(int(digits), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_date(text: str | None) -> date | None:
    """The calendar date of a timestamp (its UTC day), or None."""
    if not text or not text.strip():
        return None
    value = text.strip()
    if _is_number(value):
        moment = _from_epoch(value)
        return moment.date() if moment else None
    match = _DATE_PREFIX.match(value)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


# --- severity, rating, classification -------------------------------------------------------

_SEVERITY_ORDER = tuple(Severity)  # highest first


def highest(severities: Iterable[Severity]) -> Severity:
    """The most severe of `severities` (UNSPECIFIED when empty)."""
    return min(severities, key=_SEVERITY_ORDER.index, default=Severity.UNSPECIFIED)


def severity_from_rating(rating: float | None) -> Severity:
    """The CVSS v3 qualitative band of a score, in our words (High -> important)."""
    if rating is None or rating <= 0:
        return Severity.UNSPECIFIED
    if rating >= 9.0:
        return Severity.CRITICAL
    if rating >= 7.0:
        return Severity.IMPORTANT
    if rating >= 4.0:
        return Severity.MODERATE
    return Severity.LOW


def cvss_base_score(vector: str) -> float | None:
    """The base score of a CVSS v2, v3.x or v4.0 vector; None when the vector is invalid."""
    text = vector.strip()
    try:
        if text.startswith("CVSS:4"):
            return float(CVSS4(text).base_score)
        if text.startswith("CVSS:3"):
            return float(CVSS3(text).base_score)
        return float(CVSS2(text).base_score)
    except (CVSSError, ValueError, KeyError, IndexError):
        return None


def max_rating(scores: Iterable[float | None]) -> float | None:
    """The highest known score, rounded to one decimal; None when none is known."""
    known = [score for score in scores if score is not None]
    return round(max(known), 1) if known else None


def severity_word(text: str) -> Severity | None:
    """A vendor's severity word folded to our scale; None when the word is not one we know."""
    severity = Severity.parse(text)
    if severity is Severity.UNSPECIFIED and text.strip().lower() not in {"unspecified", "none", ""}:
        return None
    return severity


_ADVISORY_KIND = re.compile(r"^[A-Z]{2}([SBE])A-")
_KIND_CLASSIFICATION = {
    "S": Classification.SECURITY,
    "B": Classification.BUGFIX,
    "E": Classification.ENHANCEMENT,
}


def classification_from_id(advisory_id: str, default: Classification) -> Classification:
    """Red Hat-style ids name their kind: RHSA/ALSA/RLSA security, RHBA bugfix, RHEA enhancement."""
    match = _ADVISORY_KIND.match(advisory_id)
    return _KIND_CLASSIFICATION[match.group(1)] if match else default


_CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$")


def cve_ids(candidates: Iterable[str]) -> tuple[str, ...]:
    """The CVE ids among `candidates`, deduplicated and sorted; other ids (DSA-, GHSA-) dropped."""
    return tuple(sorted({c.strip() for c in candidates if _CVE_RE.match(c.strip())}))


_VENDORS = {
    "ubuntu": "Canonical",
    "debian": "Debian",
    "almalinux": "AlmaLinux",
    "rocky": "Rocky Linux",
    "rhel": "Red Hat",
    "centos": "CentOS",
    "ol": "Oracle",
    "fedora": "Fedora",
    "amzn": "Amazon",
    "alpine": "Alpine Linux",
    "bottlerocket": "Bottlerocket",
}


def vendor_for(release: str) -> str:
    """The publisher of a release's packages: `Canonical` for `ubuntu:24.04`."""
    family = release.split(":", 1)[0]
    return _VENDORS.get(family, family)


_MAX_PRODUCT_NAMES = 3


def join_names(names: Iterable[str]) -> str:
    """A short product name for a set of packages: `kernel` for kernel, kernel-core, kernel-devel.

    Names that extend another name of the set (`php-cli` of `php`) are dropped; at most three
    remain, then `(+N more)`.
    """
    unique = sorted({name for name in names if name})
    roots = [n for n in unique if not any(n != r and n.startswith(r + "-") for r in unique)]
    shown = ", ".join(roots[:_MAX_PRODUCT_NAMES])
    rest = len(roots) - _MAX_PRODUCT_NAMES
    return f"{shown} (+{rest} more)" if rest > 0 else shown


def apply_cve_severities(
    records: Iterable[PatchRecord], found: Mapping[tuple[str, str, str], Severity]
) -> Iterator[PatchRecord]:
    """The records with their severity raised to the highest of `found` for their CVEs, package
    names and releases (purely computational; a record without a match is unchanged)."""
    for record in records:
        matched = [
            found[key]
            for package in record.packages
            for cve in record.cves
            if (key := (package.release, package.name, cve)) in found
        ]
        yield replace(record, severity=highest([record.severity, *matched])) if matched else record
