"""Model cards as evidence: a third-party connector written against ``collector.sdk`` only.

Reads Hugging Face-style model cards (Markdown with a YAML front matter block) and judges two things an AI
management system asks of model documentation: the card has the sections and metadata the organisation requires,
and someone reviewed it recently. Its evidence map ships beside it (``evidence.yaml``, the entry point
``evidence_collector.mappings``), so installing the package is all it takes."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.sdk import (
    DEFAULT_CLOCK_SKEW_TOLERANCE,
    Check,
    CheckResult,
    CollectContext,
    Connector,
    ConnectorSettings,
    Duration,
    LocalPath,
    Observation,
    Outcome,
    Subject,
    YamlError,
    in_the_future,
    parse_timestamp,
    parse_yaml,
)

__all__ = ["EVIDENCE_MAP", "ModelCardConnector", "ModelCardSettings"]

EVIDENCE_MAP = Path(__file__).with_name("evidence.yaml")
KIND = "model.card"
_FRONT_MATTER = re.compile(r"\A---\r?\n(?P<yaml>.*?)\r?\n---\r?\n", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.MULTILINE)


class ModelCardSettings(ConnectorSettings):
    paths: list[LocalPath]
    """Model card files or globs, e.g. ``models/*/README.md``."""
    required_sections: list[str] = ["Uses", "Bias, Risks, and Limitations", "Training Details", "Evaluation"]
    required_metadata: list[str] = ["license"]
    review_max_age: Duration = timedelta(days=365)
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE
    max_file_bytes: int = 1_000_000


def read_card(text: str, where: str) -> dict[str, Any]:
    """The card's metadata (front matter) and section titles; ``ValueError`` naming the file if unreadable."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ValueError(f"{where}: no YAML front matter (a block between '---' lines at the top)")
    try:
        metadata, _ = parse_yaml(match["yaml"], where)
    except YamlError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: the front matter is not a mapping")
    body = text[match.end() :]
    sections = [m["title"].strip() for m in _HEADING.finditer(body)]
    # YAML dates become text, as the card wrote them: the payload is stored as JSON
    return {"metadata": json.loads(json.dumps(metadata, default=str)), "sections": sections}


class ModelCardConnector(Connector[ModelCardSettings]):
    type = "model_card"
    version = "1.0.0"
    Settings = ModelCardSettings
    kinds = frozenset({KIND})

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        files = sorted({hit for pattern in self.settings.paths for hit in glob.glob(str(pattern), recursive=True)})
        if not files:
            ctx.problem(", ".join(map(str, self.settings.paths)), "no model card matches")
        for name in files:
            path = Path(name)
            try:
                with path.open("rb") as handle:
                    data = handle.read(self.settings.max_file_bytes + 1)
                if len(data) > self.settings.max_file_bytes:
                    raise ValueError(f"{path}: larger than max_file_bytes ({self.settings.max_file_bytes})")
                card = read_card(data.decode("utf-8"), str(path))
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                ctx.problem(str(path), str(exc))
                continue
            model = str(card["metadata"].get("model_name") or path.parent.name or path.stem)
            yield Observation(
                kind=KIND, subject=Subject("model", model), observed_at=modified, payload=card, source=str(path)
            )


def _complete(obs: Observation, settings: ModelCardSettings, now: datetime) -> CheckResult:
    metadata, sections = obs.payload["metadata"], {s.casefold() for s in obs.payload["sections"]}
    missing = [s for s in settings.required_sections if s.casefold() not in sections]
    missing += [f"metadata {key}" for key in settings.required_metadata if metadata.get(key) in (None, "", [])]
    if missing:
        return CheckResult(COMPLETE.id, Outcome.FAIL, f"missing: {', '.join(missing)}", {"missing": missing})
    return CheckResult(COMPLETE.id, Outcome.PASS, "every required section and metadata field is present")


def _reviewed(obs: Observation, settings: ModelCardSettings, now: datetime) -> CheckResult:
    raw = obs.payload["metadata"].get("last_reviewed")
    if raw is None:
        return CheckResult(REVIEWED.id, Outcome.FAIL, "the card names no last_reviewed date")
    reviewed = parse_timestamp(str(raw))
    if reviewed is None:
        return CheckResult(REVIEWED.id, Outcome.ERROR, f"last_reviewed {raw!r} is not a date")
    if future := in_the_future(reviewed, now, settings.clock_skew_tolerance):
        return CheckResult(REVIEWED.id, Outcome.FAIL, f"last_reviewed {future}")
    age = now - reviewed
    if age > settings.review_max_age:
        return CheckResult(REVIEWED.id, Outcome.FAIL, f"last reviewed {age.days} days ago ({raw})")
    return CheckResult(REVIEWED.id, Outcome.PASS, f"reviewed {age.days} days ago ({raw})")


COMPLETE = Check("model_card.complete", KIND, "Model card has the required sections and metadata", _complete)
REVIEWED = Check("model_card.reviewed", KIND, "Model card reviewed within review_max_age", _reviewed)
ModelCardConnector.checks = (COMPLETE, REVIEWED)
