"""Turn a DriftReport into lines for people (cleo tags), machines (JSON) and GitHub Actions."""

from __future__ import annotations

import json
from itertools import groupby
from typing import TYPE_CHECKING

from cleo.formatters.formatter import Formatter

from poetry_snapshot.check.drift import DriftKind
from poetry_snapshot.display import human_size

if TYPE_CHECKING:
    from poetry_snapshot.check.drift import Drift
    from poetry_snapshot.check.drift import DriftReport

# Beyond this many drifts of one kind, the table shows a count (the JSON keeps them all).
_ROWS_PER_KIND = 20


def drift_table(report: DriftReport, verbosity: int = 0) -> list[str]:
    """A readable report: drifts grouped by kind, then a one-line summary."""
    lines = _context(report)
    for kind, group in groupby(report.drifts, key=lambda d: d.kind):
        drifts = list(group)
        lines.append("")
        lines.append(f"<error>{_e(kind.title)}</> ({len(drifts)})")
        shown = drifts if verbosity else drifts[:_ROWS_PER_KIND]
        lines.extend(_rows(shown))
        if len(shown) < len(drifts):
            lines.append(f"  <comment>... and {len(drifts) - len(shown)} more (-v shows all)</>")
        fixes = sorted({d.fix for d in drifts})
        if len(fixes) == 1:
            lines.append(f"  fix: <c1>{_e(fixes[0])}</>")
        else:
            lines.extend(f"  fix: <c1>{_e(fix)}</>" for fix in fixes[:5])
    extra = [d for d in report.tolerated if d.kind is DriftKind.EXTRANEOUS]
    if extra:
        names = ", ".join(f"{d.package} {d.found}" for d in extra)
        lines.append("")
        lines.append(f"<comment>Tolerated with --allow-extra:</> {_e(names)}")
    for drift in report.tolerated:
        if drift.kind is not DriftKind.EXTRANEOUS:
            lines.append("")
            lines.append(
                f"<comment>Tolerated:</> {_e(drift.package or '-')} expected"
                f" {_e(drift.expected)}, found {_e(drift.found)}"
            )
    if report.deep is not None:
        lines.append("")
        lines.extend(_deep_lines(report, verbosity))
    lines.append("")
    lines.append(summary_line(report))
    return lines


def summary_line(report: DriftReport) -> str:
    count = report.packages_checked
    scope = f"{count} locked package{'' if count == 1 else 's'}"
    if report.ok:
        return f"<success>Environment matches poetry.lock</>: {scope} checked."
    counts: dict[str, int] = {}
    for drift in report.drifts:
        counts[drift.kind.value] = counts.get(drift.kind.value, 0) + 1
    detail = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    noun = "drift" if len(report.drifts) == 1 else "drifts"
    return (
        f"<error>Environment drifted from poetry.lock</>: {len(report.drifts)} {noun}"
        f" ({detail}); {scope} checked."
    )


def drift_json(report: DriftReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False)


def github_annotations(report: DriftReport) -> list[str]:
    """One `::error` workflow command per drift (GitHub Actions shows them on the run)."""
    lines = []
    for drift in report.drifts:
        title = f"poetry-snapshot: {drift.kind.title}"
        subject = drift.package or "environment"
        if drift.path:
            subject += f" {drift.path}"
        message = f"{subject}: expected {drift.expected}, found {drift.found}. Fix: {drift.fix}"
        lines.append(f"::error title={_gh_property(title)}::{_gh_data(message)}")
    return lines


def _context(report: DriftReport) -> list[str]:
    groups = ", ".join(report.groups) or "none"
    extras = ", ".join(report.extras) or "none"
    if report.environment is None:
        env = "<comment>none</>"
    else:
        env = f"<c1>{_e(report.environment)}</>"
        if report.interpreter is not None:
            i = report.interpreter
            env += f" ({_e(i.implementation)} {_e(i.version)})"
    return [
        f"Checking {env}",
        f"against <c1>{_e(report.lock_file)}</> (groups: {_e(groups)}; extras: {_e(extras)})",
    ]


def _rows(drifts: list[Drift]) -> list[str]:
    rows = [(d.package or "-") + (f" {d.path}" if d.path else "") for d in drifts]
    name_width = max(len(r) for r in rows)
    expected_width = max(len(d.expected) for d in drifts)
    return [
        f"  <c1>{_e(name.ljust(name_width))}</>  expected {_e(d.expected.ljust(expected_width))}"
        f"  found <comment>{_e(d.found)}</>"
        for name, d in zip(rows, drifts)
    ]


def _deep_lines(report: DriftReport, verbosity: int) -> list[str]:
    deep = report.deep
    assert deep is not None
    more = "" if verbosity else " (-v lists them)"
    lines = [
        f"Deep check: {deep.files} files ({human_size(deep.bytes)}) of {deep.distributions}"
        f" distributions hashed against their RECORD; {len(deep.unchecked)} entries unchecked"
        + (more if deep.unchecked else "")
        + ".",
        f"Ownership: {deep.scanned} files in site-packages and the scripts directory checked"
        " against the installed distributions' RECORDs.",
    ]
    wrong = {d.package for d in report.drifts if d.kind is DriftKind.WRONG_BUILD}
    if deep.proven or deep.unproven or wrong:
        built = sum(1 for b in deep.proven if b.built is not None)
        compared = len(deep.proven) + len(deep.unproven) + len(wrong)
        line = (
            f"Builds: {len(deep.proven)} of {compared} locked"
            " distributions proven to be the files of a locked artifact"
            f" ({human_size(deep.artifact_bytes)} of locked files hashed"
            + (f"; {built} built by Poetry from a locked sdist" if built else "")
            + ")"
        )
        if wrong:
            line += f"; {len(wrong)} wrong build{'s' if len(wrong) > 1 else ''}"
        if deep.unproven:
            line += f"; {len(deep.unproven)} build{'s' if len(deep.unproven) > 1 else ''}"
            line += f" unverified{more}"
        lines.append(line + ".")
    if deep.shared:
        count = len(deep.shared)
        lines.append(
            f"Shared files: {count} file{'s' if count > 1 else ''} installed by several"
            f" distributions, each holding what one of them wrote{more}."
        )
    if verbosity >= 1:
        reasons: dict[str, int] = {}
        for entry in deep.unchecked:
            reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
        lines.extend(f"  unchecked, {_e(reason)}: {n}" for reason, n in sorted(reasons.items()))
        lines.extend(
            f"  build unverified, {_e(b.package)} {_e(b.version)}: {_e(b.reason)}"
            for b in deep.unproven
        )
        lines.extend(
            f"  shared, {_e(f.path)}: {_e(', '.join(f.packages))} (holds {_e(f.matches)}'s)"
            for f in deep.shared
        )
    if verbosity >= 2:
        lines.extend(f"    {_e(e.package)}: {_e(e.path)} ({_e(e.reason)})" for e in deep.unchecked)
        lines.extend(
            f"  build proven, {_e(b.package)} {_e(b.version)}: {_e(b.artifact)}"
            + (f" (Poetry's build {_e(b.built)})" if b.built else "")
            for b in deep.proven
        )
    return lines


def _e(text: str) -> str:
    return Formatter.escape(text)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")
