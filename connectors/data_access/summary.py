"""Summarise CloudTrail records per dataset in bounded memory: per-principal counters, never the records.

A record is matched to the designated datasets by its bucket and key (S3) or feature group (SageMaker Feature
Store), classified as a read, write, delete or metadata call by its event name, and counted against its principal.
Memory grows with the number of principals and datasets, and with the event rate times the dedupe horizon, never
with the number of records."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.sdk import parse_timestamp

from .settings import Dataset

__all__ = [
    "CATEGORIES",
    "DatasetSummary",
    "Principal",
    "Summariser",
    "classify",
    "principal_of",
    "source_ip_class",
    "time_text",
    "user_agent_class",
]

CATEGORIES = ("read", "write", "delete", "metadata", "other")

S3 = "s3.amazonaws.com"
SAGEMAKER = "sagemaker.amazonaws.com"
KNOWN_SOURCES = frozenset({S3, SAGEMAKER})

_S3_READ = frozenset(
    {
        "GetObject",
        "HeadObject",
        "GetObjectAttributes",
        "SelectObjectContent",
        "GetObjectTorrent",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListParts",
        "ListMultipartUploads",
    }
)
_S3_WRITE = frozenset(
    {
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "RestoreObject",
        "PutObjectAcl",
        "PutObjectTagging",
        "PutObjectRetention",
        "PutObjectLegalHold",
        "DeleteObjectTagging",
    }
)
_S3_DELETE = frozenset({"DeleteObject", "DeleteObjects", "DeleteBucket"})
_S3_METADATA = frozenset({"GetObjectAcl", "GetObjectTagging", "GetObjectRetention", "GetObjectLegalHold"})
_FS_READ = frozenset({"GetRecord", "BatchGetRecord"})
_FS_WRITE = frozenset({"PutRecord", "CreateFeatureGroup", "UpdateFeatureGroup", "UpdateFeatureMetadata"})
_FS_DELETE = frozenset({"DeleteRecord", "DeleteFeatureGroup"})
_FS_METADATA = frozenset({"DescribeFeatureGroup", "DescribeFeatureMetadata", "ListFeatureGroups", "SearchFeatures"})
_MANAGEMENT_VERBS = (
    ("Get", "metadata"),
    ("List", "metadata"),
    ("Describe", "metadata"),
    ("Head", "metadata"),
    ("Put", "write"),
    ("Create", "write"),
    ("Update", "write"),
    ("Delete", "write"),
)


def classify(source: str, name: str) -> str:
    """``read``/``write``/``delete``/``metadata`` for a call to S3 or SageMaker (other management calls by their
    verb: Get/List/Describe/Head are ``metadata``, Put/Create/Update/Delete ``write``); ``other`` for the rest.

    Deleting data (objects, records, a bucket, a feature group) is ``delete``; deleting configuration (a bucket
    policy, tags) is a configuration ``write``."""
    if source == S3:
        if name in _S3_READ:
            return "read"
        if name in _S3_WRITE:
            return "write"
        if name in _S3_DELETE:
            return "delete"
        if name in _S3_METADATA:
            return "metadata"
    elif source == SAGEMAKER:
        if name in _FS_READ:
            return "read"
        if name in _FS_WRITE:
            return "write"
        if name in _FS_DELETE:
            return "delete"
        if name in _FS_METADATA:
            return "metadata"
    else:
        return "other"
    for verb, category in _MANAGEMENT_VERBS:
        if name.startswith(verb):
            return category
    return "other"


_SSO_ROLE_PREFIX = "AWSReservedSSO_"
_HUMAN_TYPES = frozenset({"IAMUser", "Root", "IdentityCenterUser", "SAMLUser", "FederatedUser"})


@dataclass(frozen=True, slots=True)
class Identity:
    key: str
    """The ARN counted against: the role ARN for an assumed-role session, else the principal's own ARN."""
    type: str
    human: bool
    session: str | None = None
    arn: str | None = None
    """The session ARN of an assumed role (allow-lists may name either)."""


def principal_of(user_identity: Any) -> Identity:
    """Who made the call, from the record's ``userIdentity`` (CloudTrail's documented element)."""
    if not isinstance(user_identity, dict):
        return Identity("unknown:no-userIdentity", "unknown", human=False)
    kind = str(user_identity.get("type") or "unknown")
    arn = user_identity.get("arn")
    if kind == "AssumedRole":
        issuer = (user_identity.get("sessionContext") or {}).get("sessionIssuer") or {}
        role_arn = issuer.get("arn") if isinstance(issuer, dict) else None
        role_name = str(issuer.get("userName") or "") if isinstance(issuer, dict) else ""
        session = str(arn).rsplit("/", 1)[-1] if isinstance(arn, str) and "/" in arn else None
        human = role_name.startswith(_SSO_ROLE_PREFIX) or f"/{_SSO_ROLE_PREFIX}" in str(role_arn or "")
        return Identity(
            str(role_arn or arn or "unknown:AssumedRole"),
            "sso_session" if human else "role_session",
            human,
            session,
            str(arn) if arn else None,
        )
    if kind == "AWSService":
        return Identity(f"service:{user_identity.get('invokedBy') or 'unknown'}", "aws_service", human=False)
    if kind == "AWSAccount":
        account = user_identity.get("accountId") or "unknown"
        return Identity(f"account:{account}:{user_identity.get('principalId') or ''}", "aws_account", human=False)
    if isinstance(arn, str) and arn:
        return Identity(arn, {"IAMUser": "iam_user", "Root": "root"}.get(kind, kind), kind in _HUMAN_TYPES)
    principal_id = user_identity.get("principalId") or user_identity.get("userName") or ""
    return Identity(f"unknown:{kind}:{principal_id}", kind, kind in _HUMAN_TYPES)


_CACHE_LIMIT = 4096
_TYPE_NAMES = {"IAMUser": "iam_user", "Root": "root"}


def source_ip_class(value: Any, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - a bounded memo
    """``aws_service`` (a service name or ``AWS Internal``), ``private``, ``public`` or ``unknown``."""
    if not isinstance(value, str) or not value:
        return "unknown"
    found = _cache.get(value)
    if found is not None:
        return found
    if value.endswith(".amazonaws.com") or value == "AWS Internal":
        found = "aws_service"
    else:
        try:
            found = "private" if ipaddress.ip_address(value).is_private else "public"
        except ValueError:
            found = "unknown"
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[value] = found
    return found


def user_agent_class(value: Any, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - a bounded memo
    """``console``, ``aws_cli``, ``sdk``, ``aws_service`` or ``other``."""
    if not isinstance(value, str) or not value:
        return "other"
    found = _cache.get(value)
    if found is not None:
        return found
    lowered = value.lower().lstrip("[")
    if "console" in lowered or lowered.startswith("signin.amazonaws.com"):
        found = "console"
    elif lowered.startswith("aws-cli/"):
        found = "aws_cli"
    elif lowered.startswith(("boto3/", "botocore/", "aws-sdk-", "aws-internal/")) or "aws-sdk" in lowered:
        found = "sdk"
    elif lowered.endswith(".amazonaws.com") or lowered == "aws internal":
        found = "aws_service"
    else:
        found = "other"
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[value] = found
    return found


def time_text(value: Any) -> str | None:
    """A record's ``eventTime`` as ``YYYY-MM-DDTHH:MM:SSZ`` (CloudTrail's own form, which sorts as text)."""
    if isinstance(value, str) and len(value) == 20 and value[10] == "T" and value[19] == "Z" and value[:4].isdigit():
        return value
    parsed = parse_timestamp(value)
    return None if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Principal:
    """Counters for one principal on one dataset."""

    identity: Identity
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    denied: int = 0
    first: str = ""
    last: str = ""
    source_ip_classes: set[str] = field(default_factory=set)
    user_agent_classes: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    sessions_not_listed: int = 0
    keys: set[str] = field(default_factory=set)
    keys_not_listed: int = 0
    arns: set[str] = field(default_factory=set)
    """Session ARNs seen (bounded like ``sessions``): what an allow-list naming sessions is matched against."""

    def as_json(self) -> dict[str, Any]:
        identity = self.identity
        return {
            "principal": identity.key,
            "type": identity.type,
            "human": identity.human,
            "counts": dict(self.counts),
            "denied": self.denied,
            "first": self.first or None,
            "last": self.last or None,
            "source_ip_classes": sorted(self.source_ip_classes),
            "user_agent_classes": sorted(self.user_agent_classes),
            "sessions": sorted(self.sessions),
            "sessions_not_listed": self.sessions_not_listed,
            "session_arns": sorted(self.arns),
            "key_prefixes": sorted(self.keys),
            "key_prefixes_not_listed": self.keys_not_listed,
        }


@dataclass(slots=True)
class DatasetSummary:
    dataset: Dataset
    principals: dict[str, Principal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    events: int = 0
    denied: int = 0
    unknown_service_events: int = 0
    future_events: int = 0
    first: str = ""
    last: str = ""


@dataclass(frozen=True, slots=True)
class _Location:
    dataset: str
    prefix: str


class Summariser:
    """Feed CloudTrail records in any order; read per-dataset summaries at the end."""

    def __init__(
        self,
        datasets: Iterable[Dataset],
        *,
        now: datetime,
        skew: timedelta,
        key_depth: int,
        keys_per_principal: int,
        dedupe_horizon: timedelta,
        sessions_per_principal: int = 20,
    ) -> None:
        self.datasets = {d.name: DatasetSummary(d) for d in datasets}
        self._by_bucket: dict[str, list[_Location]] = {}
        self._by_feature_group: dict[str, str] = {}
        for summary in self.datasets.values():
            for location in summary.dataset.s3:
                self._by_bucket.setdefault(location.bucket, []).append(_Location(summary.dataset.name, location.prefix))
            for name in summary.dataset.feature_groups:
                self._by_feature_group[name.lower()] = summary.dataset.name
        self._future_after = (now + skew).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._key_depth = key_depth
        self._keys_per_principal = keys_per_principal
        self._sessions_per_principal = sessions_per_principal
        self._horizon = dedupe_horizon
        self._seen: dict[str, str] = {}
        self._identities: dict[str, Identity] = {}
        self._seen_limit = 50_000
        self._newest = ""
        self.records = 0
        self.duplicates = 0
        self.unreadable = 0
        """Records without a readable eventTime, eventName or eventSource: they cannot be judged."""
        self.unknown_services: dict[str, int] = {}
        self.unknown_names: dict[str, int] = {}

    # -- matching -----------------------------------------------------------------------------

    def _s3_targets(self, record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        params = record.get("requestParameters")
        bucket = key = None
        listing = False
        if isinstance(params, dict):
            bucket = params.get("bucketName")
            key = params.get("key")
            if key is None and isinstance(params.get("prefix"), str):
                key, listing = params["prefix"], True
        if not isinstance(bucket, str):
            bucket, key = self._s3_from_resources(record.get("resources"))
        if not isinstance(bucket, str) or bucket not in self._by_bucket:
            return []
        out = []
        for location in self._by_bucket[bucket]:
            if not location.prefix:
                out.append((location.dataset, key if isinstance(key, str) else None))
            elif isinstance(key, str) and key.startswith(location.prefix):
                out.append((location.dataset, key[len(location.prefix) :]))
            elif listing and isinstance(key, str) and location.prefix.startswith(key):
                out.append((location.dataset, None))
        return out

    @staticmethod
    def _s3_from_resources(resources: Any) -> tuple[str | None, str | None]:
        if not isinstance(resources, list):
            return None, None
        bucket = None
        for resource in resources:
            arn = resource.get("ARN") if isinstance(resource, dict) else None
            if not isinstance(arn, str) or not arn.startswith("arn:aws") or ":s3:::" not in arn:
                continue
            path = arn.split(":s3:::", 1)[1]
            name, _, key = path.partition("/")
            if key:
                return name, key
            bucket = name
        return bucket, None

    def _feature_group_target(self, record: Mapping[str, Any]) -> str | None:
        params = record.get("requestParameters")
        name = params.get("featureGroupName") if isinstance(params, dict) else None
        candidates = [name] if isinstance(name, str) else []
        resources = record.get("resources")
        if isinstance(resources, list):
            candidates += [str(r["ARN"]) for r in resources if isinstance(r, dict) and isinstance(r.get("ARN"), str)]
        for candidate in candidates:
            short = candidate.rsplit("feature-group/", 1)[-1].lower()
            if short in self._by_feature_group:
                return self._by_feature_group[short]
        return None

    def _targets(self, source: str, record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        if source == S3:
            return self._s3_targets(record)
        if source == SAGEMAKER:
            found = self._feature_group_target(record)
            return [(found, None)] if found else []
        # another service naming a designated bucket's objects or feature group among its resources
        targets: list[tuple[str, str | None]] = [
            (name, None) for name, _ in self._s3_targets({"resources": record.get("resources")})
        ]
        found = self._feature_group_target({"resources": record.get("resources")})
        return targets + ([(found, None)] if found else [])

    # -- counting -----------------------------------------------------------------------------

    def remember(self, event_ids: Mapping[str, str]) -> None:
        """Event ids already counted by an earlier run (``id -> eventTime``): their copies are duplicates."""
        for event_id, at in event_ids.items():
            if isinstance(event_id, str) and isinstance(at, str):
                self._seen[event_id] = at

    def _first_delivery(self, event_id: Any, at: str) -> bool:
        if not isinstance(event_id, str) or not event_id:
            return True
        if event_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[event_id] = at
        if at > self._newest:
            self._newest = at
        if len(self._seen) > self._seen_limit:
            cutoff = (parse_timestamp(self._newest) or datetime.now(UTC)) - self._horizon
            oldest = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._seen = {k: v for k, v in self._seen.items() if v >= oldest}
            self._seen_limit = max(50_000, 2 * len(self._seen))
        return True

    def _identity(self, user_identity: Any) -> Identity:
        """``principal_of``, memoised by the identity's ARN (an ARN always names the same principal and session)."""
        arn = user_identity.get("arn") if isinstance(user_identity, dict) else None
        if not isinstance(arn, str) or not arn:
            return principal_of(user_identity)
        found = self._identities.get(arn)
        if found is None or found.type != _TYPE_NAMES.get(user_identity.get("type"), found.type):
            found = principal_of(user_identity)
            if len(self._identities) >= _CACHE_LIMIT:
                self._identities.clear()
            self._identities[arn] = found
        return found

    def add(self, record: Any) -> None:
        self.records += 1
        if not isinstance(record, dict):
            self.unreadable += 1
            return
        source = record.get("eventSource")
        name = record.get("eventName")
        at = time_text(record.get("eventTime"))
        if not isinstance(source, str) or not isinstance(name, str) or at is None:
            self.unreadable += 1
            return
        targets = self._targets(source, record)
        if not targets or not self._first_delivery(record.get("eventID"), at):
            return
        category = classify(source, name)
        known_source = source in KNOWN_SOURCES
        if not known_source:
            self.unknown_services[source] = self.unknown_services.get(source, 0) + 1
        elif category == "other":
            label = f"{source}:{name}"
            self.unknown_names[label] = self.unknown_names.get(label, 0) + 1
        identity = self._identity(record.get("userIdentity"))
        denied = bool(record.get("errorCode"))
        future = at > self._future_after
        for dataset_name, key in targets:
            self._count(dataset_name, key, identity, record, category, at, denied, future, known_source)

    def _count(
        self,
        dataset_name: str,
        key: str | None,
        identity: Identity,
        record: Mapping[str, Any],
        category: str,
        at: str,
        denied: bool,
        future: bool,
        known_source: bool,
    ) -> None:
        summary = self.datasets[dataset_name]
        summary.events += 1
        if not known_source:
            summary.unknown_service_events += 1
        if future:
            summary.future_events += 1
        principal = summary.principals.get(identity.key)
        if principal is None:
            principal = summary.principals[identity.key] = Principal(identity)
        if denied:
            summary.denied += 1
            principal.denied += 1
        else:
            summary.counts[category] += 1
            principal.counts[category] += 1
        if not future:
            if not principal.first or at < principal.first:
                principal.first = at
            if at > principal.last:
                principal.last = at
            if not summary.first or at < summary.first:
                summary.first = at
            if at > summary.last:
                summary.last = at
        principal.source_ip_classes.add(source_ip_class(record.get("sourceIPAddress")))
        principal.user_agent_classes.add(user_agent_class(record.get("userAgent")))
        limit = self._sessions_per_principal
        if identity.session is not None and identity.session not in principal.sessions:
            if len(principal.sessions) < limit:
                principal.sessions.add(identity.session)
                if identity.arn:
                    principal.arns.add(identity.arn)
            else:
                principal.sessions_not_listed += 1
        if key is not None and self._key_depth:
            cut = _cut(key, self._key_depth)
            if cut not in principal.keys:
                if len(principal.keys) < self._keys_per_principal:
                    principal.keys.add(cut)
                else:
                    principal.keys_not_listed += 1


def _cut(key: str, depth: int) -> str:
    """The first ``depth`` path segments of a key, ending in ``/`` when more of the key was left out."""
    parts = key.split("/", depth)
    if len(parts) <= depth:
        return key
    return "/".join(parts[:depth]) + "/"
