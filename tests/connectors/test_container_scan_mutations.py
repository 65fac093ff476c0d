"""No mutation of a failing scan report turns it into a pass.

Real reports that fail ``container.no_fixable_vulns`` (tests/fixtures, see SOURCES.md) are mutated along the
fields the parsers read (keys renamed, deleted or retyped, severities and fix states turned to garbage, NaN or
negative numbers, lists wrapped and unwrapped, unknown keys added), one to three mutations at a time, then read
by the connector and judged. Allowed: a problem and no evidence, ERROR, FAIL, or NOT_APPLICABLE when nothing is
left to judge. Left out, because the result is a report the scanner itself could have written about a clean
target: deleting a list item, emptying a list, and deleting or nulling a Trivy result's ``Vulnerabilities``
(Trivy leaves it out, and old versions wrote ``null``, when a target is clean).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.connector import CollectContext
from collector.model import Outcome
from connectors.container_scan import NO_FIXABLE_VULNS, ContainerScanConnector, ContainerScanSettings

FIXTURES = Path(__file__).parents[1] / "fixtures"

Path_ = tuple[str | int, ...]

READ_KEYS = {
    "trivy": {
        "SchemaVersion",
        "Results",
        "Target",
        "Class",
        "Type",
        "Vulnerabilities",
        "VulnerabilityID",
        "PkgName",
        "InstalledVersion",
        "FixedVersion",
        "Severity",
        "Status",
    },
    "grype": {
        "matches",
        "vulnerability",
        "artifact",
        "id",
        "severity",
        "fix",
        "state",
        "versions",
        "fixedInVersion",
        "name",
        "version",
        "descriptor",
        "db",
        "source",
        "type",
        "target",
    },
    "sarif": {
        "version",
        "runs",
        "tool",
        "driver",
        "name",
        "rules",
        "id",
        "properties",
        "tags",
        "security-severity",
        "help",
        "text",
        "results",
        "ruleId",
        "ruleIndex",
        "level",
        "message",
        "defaultConfiguration",
    },
}
"""Per format, the keys on the way from the document to a finding's id, severity and fix state."""

FAILING_SAMPLES = [
    ("trivy", "trivy/trivy-alpine-39-critical.json", "HIGH"),
    ("grype", "grype/grype-image-newest-fields.json", "HIGH"),
    ("grype", "grype/grype-directory-source.json", "HIGH"),
    ("sarif", "sarif/grype-image.sarif.json", "HIGH"),
    ("sarif", "sarif/trivy-alpine-310.sarif.json", "MEDIUM"),
]

VALID_WORDS = {
    "critical",
    "high",
    "medium",
    "low",
    "unknown",
    "negligible",
    "informational",
    "fixed",
    "affected",
    "not_affected",
    "under_investigation",
    "will_not_fix",
    "fix_deferred",
    "end_of_life",
    "not-fixed",
    "wont-fix",
    "none",
    "note",
    "warning",
    "error",
}
"""Values a scanner really writes for a severity, a fix state or a level: changing one to another is a
different report, not a hostile one."""

garbage = st.one_of(
    st.text(max_size=12).filter(lambda text: text.strip().lower() not in VALID_WORDS),
    st.sampled_from(["NaN", "-1", "11", "Infinity", "1e309", "-0.0"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2),
)


def _paths(node: Any, read: set[str], here: Path_ = ()) -> Iterator[Path_]:
    yield here
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        if isinstance(key, int) or key in read:
            yield from _paths(child, read, (*here, key))


def _parent(document: Any, path: Path_) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def _renamed(name: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([name.lower(), name.upper(), name.swapcase(), name[:-1], name + "s", f"_{name}", name + " "]),
        st.text(min_size=1, max_size=12),
    ).filter(lambda new: new != name)


def _is_vulnerabilities(path: Path_) -> bool:
    return bool(path) and path[-1] == "Vulnerabilities"


def _pattern(path: Path_) -> tuple[str, ...]:
    return tuple("*" if isinstance(part, int) else part for part in path)


def mutate(document: Any, data: st.DataObject, read: set[str], counts: Counter[str], unwrapped: set[Path_]) -> Any:
    """One mutation at a path the parsers read; returns the (possibly new) document.

    ``unwrapped`` holds the paths unwrapped so far: wrapping one again would delete the list's other items.

    The path is drawn by its shape first (``Results.*.Vulnerabilities.*.Severity``), then one of its instances,
    so that the few container keys are hit as often as the many record fields."""
    by_pattern: dict[tuple[str, ...], list[Path_]] = {}
    for candidate in _paths(document, read):
        by_pattern.setdefault(_pattern(candidate), []).append(candidate)
    pattern = data.draw(st.sampled_from(sorted(by_pattern)))
    path = data.draw(st.sampled_from(by_pattern[pattern]))
    value = document if not path else _parent(document, path)[path[-1]]
    kinds = ["retype"] if path in unwrapped else ["retype", "wrap"]
    # a list inside a list is only there after a wrap: unwrapping either one would delete list items
    in_a_list = bool(path) and isinstance(path[-1], int)
    if isinstance(value, list) and value and not isinstance(value[0], list) and not in_a_list:
        kinds.append("unwrap")
    if isinstance(value, dict):
        kinds.append("add key")
    if path and isinstance(path[-1], str):
        kinds.append("rename")
        if not _is_vulnerabilities(path):
            kinds.append("delete")
    kind = data.draw(st.sampled_from(kinds))
    counts[kind] += 1
    if kind == "retype":
        new = data.draw(garbage.filter(lambda g: not (_is_vulnerabilities(path) and g is None)))
    elif kind == "wrap":
        new = [value]
    elif kind == "unwrap":
        new = value[0]
        unwrapped.add(path)
    elif kind == "add key":
        names = [*value, *read]
        name = data.draw(st.one_of(st.sampled_from(names).flatmap(_renamed), st.text(max_size=8)))
        value[name] = data.draw(st.one_of(garbage, st.just(value.get(name))))
        return document
    else:
        parent = _parent(document, path)
        moved = parent.pop(path[-1])
        if kind == "rename":
            parent[data.draw(_renamed(path[-1]))] = moved
        return document
    if not path:
        return new
    _parent(document, path)[path[-1]] = new
    return document


FINDING_MARKERS = {
    "trivy": {"VulnerabilityID", "PkgName", "InstalledVersion", "FixedVersion"},
    "grype": {"vulnerability"},
    "sarif": {"ruleId"},
}


def targets_left(node: Any, fmt: str) -> int:
    """How many finding-like objects the mutated document still holds, wherever a mutation moved them."""
    if isinstance(node, dict):
        here = 0 if FINDING_MARKERS[fmt].isdisjoint(node) else 1
        return here + sum(targets_left(child, fmt) for child in node.values())
    if isinstance(node, list):
        return sum(targets_left(child, fmt) for child in node)
    return 0


def verdicts(document: Any, threshold: str) -> tuple[list[Outcome], list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        connector = ContainerScanConnector(ContainerScanSettings(paths=[str(path)], fail_on_severity=threshold))
        now = datetime.now(UTC)
        ctx = CollectContext(instance="scans", run_id="r1", now=now)
        observations = list(connector.collect(ctx))
        check_settings = ContainerScanSettings(paths=["x"], fail_on_severity=threshold)
        results = [NO_FIXABLE_VULNS.run(o, check_settings, now) for o in observations]
    return [r.result for r in results], [p.reason for p in ctx.problems]


@pytest.mark.parametrize(("fmt", "sample", "threshold"), FAILING_SAMPLES, ids=[s[1] for s in FAILING_SAMPLES])
def test_no_mutation_of_a_failing_report_is_a_pass(fmt: str, sample: str, threshold: str) -> None:
    original = json.loads((FIXTURES / sample).read_text(encoding="utf-8"))
    assert verdicts(original, threshold)[0] == [Outcome.FAIL]
    counts: Counter[str] = Counter()
    judged: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        document = json.loads(json.dumps(original))
        applied: Counter[str] = Counter()
        unwrapped: set[Path_] = set()
        for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 3]))):
            document = mutate(document, data, READ_KEYS[fmt], applied, unwrapped)
        counts.update(applied)
        outcomes, problems = verdicts(document, threshold)
        judged["problem" if not outcomes else "+".join(sorted(o.value for o in outcomes))] += 1
        assert Outcome.PASS not in outcomes, (document, problems)
        if Outcome.NOT_APPLICABLE in outcomes:
            assert targets_left(document, fmt) == 0, (document, problems)
        assert outcomes or problems

    run()
    reports, mutations = sum(judged.values()), sum(counts.values())
    print(f"\n{sample}: {reports} reports, {mutations} mutations {dict(counts)}; {dict(judged)}")
    assert reports >= 200
