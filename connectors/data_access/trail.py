"""Reading a CloudTrail trail: its log files in S3, its event selectors and status, and LookupEvents.

Log files live at ``<prefix>/AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_
<region>_<YYYYMMDDTHHmmZ>_<id>.json.gz``; within one account and region the keys sort in delivery order, so the
cursor is the last key read per account and region. Digest files (``CloudTrail-Digest/``) are not read."""

from __future__ import annotations

import gc
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from .settings import Dataset, TrailSettings

__all__ = [
    "Coverage",
    "LogFile",
    "UnreadableLogFile",
    "coverage_of",
    "list_log_files",
    "lookup_management_events",
    "read_log_file",
    "region_prefixes",
]

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_LOG_NAME = re.compile(r"^\d{12}_CloudTrail_[a-z0-9-]+_(\d{8}T\d{4}Z)_[A-Za-z0-9]+\.json\.gz$")


class UnreadableLogFile(ValueError):
    """A log file that is not gzip JSON holding a ``Records`` list."""


@dataclass(frozen=True, slots=True)
class LogFile:
    key: str
    region_prefix: str


def _child_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    return out


def region_prefixes(s3: Any, trail: TrailSettings) -> list[str]:
    """``.../AWSLogs/[org/]<account>/CloudTrail/<region>/`` for every account and region with log files."""
    root = f"{trail.prefix}/AWSLogs/" if trail.prefix else "AWSLogs/"
    accounts: list[str] = []
    for child in _child_prefixes(s3, trail.bucket, root):
        name = child[len(root) :].strip("/")
        if _ACCOUNT.match(name):
            accounts.append(child)
        elif _ORG.match(name):
            accounts.extend(
                c for c in _child_prefixes(s3, trail.bucket, child) if _ACCOUNT.match(c[len(child) :].strip("/"))
            )
    regions: list[str] = []
    for account in accounts:
        regions.extend(_child_prefixes(s3, trail.bucket, f"{account}CloudTrail/"))
    return sorted(regions)


def _day_prefix(region_prefix: str, since: datetime) -> str:
    """Keys before this one lie on days before ``since`` (a first run's start)."""
    return f"{region_prefix}{since:%Y/%m/%d}/"


def list_log_files(s3: Any, bucket: str, region_prefix: str, after: str | None, since: datetime) -> Iterator[LogFile]:
    """Log files after the cursor key (for an account and region without one: from the day of ``since`` on), in
    delivery order; not digests."""
    start = after if after is not None else _day_prefix(region_prefix, since)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": region_prefix}
    if start:
        kwargs["StartAfter"] = start
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for item in page.get("Contents", []):
            yield LogFile(item["Key"], region_prefix)


def log_file_time(key: str) -> str | None:
    """The delivery time in a log file's name, as ``YYYYMMDDTHHmmZ``; ``None`` for a name CloudTrail never writes."""
    match = _LOG_NAME.match(key.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _parsed(text: bytes) -> Any:
    """``orjson.loads`` with the cyclic garbage collector paused: a log file's thousands of nested records would
    otherwise trigger collections that traverse them again and again (about a third of the parse time). The parse
    holds the GIL throughout, and JSON holds no cycles, so nothing is left uncollected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(text)
    finally:
        if enabled:
            gc.enable()


def read_log_file(s3: Any, bucket: str, key: str) -> list[Any]:
    """The ``Records`` of one log file; :class:`UnreadableLogFile` says why there are none to read."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        raw = body.read()
    finally:
        body.close()
    try:
        text = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableLogFile(f"not a complete gzip file ({type(exc).__name__}: {exc})") from None
    try:
        document = _parsed(text)
    except orjson.JSONDecodeError as exc:
        raise UnreadableLogFile(f"not JSON ({exc})") from None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise UnreadableLogFile('no "Records" list (not a CloudTrail log file)')
    return records


# -- management events ---------------------------------------------------------------------------


def resource_names(datasets: list[Dataset]) -> list[str]:
    """The names LookupEvents is asked about: buckets and feature groups of the datasets, each once."""
    names = [location.bucket for dataset in datasets for location in dataset.s3]
    names += [group for dataset in datasets for group in dataset.feature_groups]
    return list(dict.fromkeys(names))


def lookup_management_events(cloudtrail: Any, name: str, start: datetime, end: datetime) -> Iterator[Any]:
    """Management events naming ``name`` between ``start`` and ``end``, as CloudTrail records (the
    ``CloudTrailEvent`` JSON of each); a record that is not JSON comes back as its text."""
    paginator = cloudtrail.get_paginator("lookup_events")
    pages = paginator.paginate(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": name}], StartTime=start, EndTime=end
    )
    for page in pages:
        for event in page.get("Events", []):
            text = event.get("CloudTrailEvent")
            try:
                yield json.loads(text)
            except (TypeError, ValueError):
                yield text


# -- is the dataset logged? ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coverage:
    reads: bool
    writes: bool
    selectors: list[str]
    """Names (or indexes) of the selectors that cover it."""

    def as_json(self) -> dict[str, Any]:
        return {"reads": self.reads, "writes": self.writes, "selectors": self.selectors}


_S3_OBJECT = "AWS::S3::Object"
_FEATURE_GROUP = "AWS::SageMaker::FeatureGroup"
_JUDGED_FIELDS = frozenset({"eventCategory", "resources.type", "resources.ARN", "readOnly"})


def _basic(selectors: list[dict[str, Any]], resource_type: str, arn: str) -> Iterator[tuple[str, bool, bool]]:
    for index, selector in enumerate(selectors):
        mode = selector.get("ReadWriteType", "All")
        for resource in selector.get("DataResources", []):
            if resource.get("Type") != resource_type:
                continue
            if any(arn.startswith(value) for value in resource.get("Values", [])):
                yield f"EventSelectors[{index}]", mode in ("All", "ReadOnly"), mode in ("All", "WriteOnly")


def _field_allows(condition: dict[str, Any], value: str) -> bool:
    if "Equals" in condition and value not in condition["Equals"]:
        return False
    if "StartsWith" in condition and not any(value.startswith(v) for v in condition["StartsWith"]):
        return False
    if "EndsWith" in condition and not any(value.endswith(v) for v in condition["EndsWith"]):
        return False
    if any(value == v for v in condition.get("NotEquals", [])):
        return False
    if any(value.startswith(v) for v in condition.get("NotStartsWith", [])):
        return False
    return not any(value.endswith(v) for v in condition.get("NotEndsWith", []))


def _advanced(selectors: list[dict[str, Any]], resource_type: str, arn: str) -> Iterator[tuple[str, bool, bool]]:
    """Selectors that log every data event of this type on ``arn``; one with conditions on other fields
    (event names, user identities) is not counted: it may leave some calls out."""
    for index, selector in enumerate(selectors):
        fields = {f.get("Field"): f for f in selector.get("FieldSelectors", [])}
        if set(fields) - _JUDGED_FIELDS:
            continue
        if "eventCategory" not in fields or not _field_allows(fields["eventCategory"], "Data"):
            continue
        if "resources.type" not in fields or not _field_allows(fields["resources.type"], resource_type):
            continue
        if "resources.ARN" in fields and not _field_allows(fields["resources.ARN"], arn):
            continue
        read_only = fields.get("readOnly")
        reads = read_only is None or _field_allows(read_only, "true")
        writes = read_only is None or _field_allows(read_only, "false")
        yield str(selector.get("Name") or f"AdvancedEventSelectors[{index}]"), reads, writes


def _covered(response: dict[str, Any], resource_type: str, arn: str) -> Coverage:
    reads = writes = False
    names: list[str] = []
    found = [
        *_basic(response.get("EventSelectors") or [], resource_type, arn),
        *_advanced(response.get("AdvancedEventSelectors") or [], resource_type, arn),
    ]
    for name, r, w in found:
        reads, writes = reads or r, writes or w
        names.append(name)
    return Coverage(reads, writes, names)


def coverage_of(selectors: dict[str, Any], dataset: Dataset, trail_arn: str, regions: list[str]) -> dict[str, Any]:
    """Per S3 location and feature group of the dataset: are its data events (reads, writes) logged?"""
    out: dict[str, Any] = {}
    for location in dataset.s3:
        arn = f"arn:aws:s3:::{location.bucket}/{location.prefix}"
        out[f"s3://{location.bucket}/{location.prefix}"] = _covered(selectors, _S3_OBJECT, arn).as_json()
    parts = trail_arn.split(":")
    partition, account = (parts[1], parts[4]) if len(parts) > 5 else ("aws", "")
    for group in dataset.feature_groups:
        best = Coverage(False, False, [])
        for region in regions:
            arn = f"arn:{partition}:sagemaker:{region}:{account}:feature-group/{group.lower()}"
            found = _covered(selectors, _FEATURE_GROUP, arn)
            if (found.reads and found.writes) or not (best.reads or best.writes):
                best = found
        out[f"feature-group/{group}"] = best.as_json()
    return out


def first_run_start(now: datetime, first_window: timedelta) -> datetime:
    return now - first_window
