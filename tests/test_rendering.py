"""Text, JSON and GitHub Actions forms of a drift report."""

from __future__ import annotations

import json

from cleo.formatters.formatter import Formatter

from poetry_snapshot.check.drift import DeepSummary
from poetry_snapshot.check.drift import Drift
from poetry_snapshot.check.drift import DriftKind
from poetry_snapshot.check.drift import DriftReport
from poetry_snapshot.check.drift import ProvenBuild
from poetry_snapshot.check.drift import SharedPath
from poetry_snapshot.check.drift import UncheckedFile
from poetry_snapshot.check.drift import UnprovenBuild
from poetry_snapshot.check.environment import Interpreter
from poetry_snapshot.check.environment import WheelTags
from poetry_snapshot.check.rendering import drift_json
from poetry_snapshot.check.rendering import drift_table
from poetry_snapshot.check.rendering import github_annotations
from tests.schemas import validator


def report(*drifts: Drift, deep: DeepSummary | None = None) -> DriftReport:
    return DriftReport(
        project="demo",
        project_dir="/p",
        lock_file="/p/poetry.lock",
        environment="/p/.venv",
        interpreter=Interpreter(
            "3.11.7",
            "CPython",
            "/p/.venv/bin/python",
            "linux",
            WheelTags("cp311", "cp311", ("linux_x86_64",)),
            (),
        ),
        groups=("main",),
        extras=(),
        packages_checked=12,
        drifts=drifts,
        deep=deep,
    )


def plain(lines: list[str]) -> str:
    return "\n".join(Formatter().remove_format(line) for line in lines)


def test_table_groups_kinds_and_truncates_long_groups() -> None:
    many = [
        Drift(DriftKind.EXTRANEOUS, f"pkg{i:02}", "absent", "1.0", "poetry sync") for i in range(25)
    ]
    text = plain(
        drift_table(
            report(Drift(DriftKind.MISSING, "a<b>", "1.0", "not installed", "poetry sync"), *many)
        )
    )
    assert (
        "Missing packages (1)\n  a<b>  expected 1.0  found not installed\n  fix: poetry sync"
        in text
    )
    assert "Extraneous packages (25)" in text
    assert "... and 5 more (-v shows all)" in text
    assert text.endswith(
        "Environment drifted from poetry.lock: 26 drifts (missing 1, extraneous 25); 12 locked packages checked."
    )
    assert "pkg24" in plain(drift_table(report(*many), verbosity=1))


def test_deep_summary_and_verbosity() -> None:
    deep = DeepSummary(
        3, 40, 5 * 1024 * 1024, (UncheckedFile("a", "a-1.dist-info/RECORD", "no hash in RECORD"),)
    )
    quiet = plain(drift_table(report(deep=deep)))
    assert "40 files (5.0 MiB) of 3 distributions" in quiet and "(-v lists them)" in quiet
    assert "unchecked, no hash in RECORD: 1" in plain(drift_table(report(deep=deep), verbosity=1))
    assert "a: a-1.dist-info/RECORD (no hash in RECORD)" in plain(
        drift_table(report(deep=deep), verbosity=2)
    )


def test_json_matches_schema() -> None:
    validate = validator("drift-report")
    data = json.loads(
        drift_json(
            report(
                Drift(DriftKind.MODIFIED_FILE, "x", "sha256=a", "sha256=b", "fix", path="x/y.py"),
                deep=DeepSummary(1, 1, 1),
            )
        )
    )
    validate(data)
    assert data["schema_version"] == 1 and data["drift_count"] == 1 and data["ok"] is False


def test_github_annotations_escape_workflow_command_syntax() -> None:
    lines = github_annotations(
        report(
            Drift(
                DriftKind.WRONG_SOURCE,
                "p",
                "index",
                "url https://h/p.whl?a=1%2C,x\nnext",
                "poetry sync",
            )
        )
    )
    assert lines == [
        "::error title=poetry-snapshot%3A Wrong sources::p: expected index,"
        " found url https://h/p.whl?a=1%252C,x%0Anext. Fix: poetry sync"
    ]


def test_unowned_files_are_listed_after_the_file_kinds_and_annotated() -> None:
    unowned = Drift(
        DriftKind.UNOWNED_FILE,
        None,
        "absent (no installed distribution lists it)",
        "a file of 9 bytes; Python runs its import lines at every start",
        "rm -- /p/.venv/lib/site-packages/evil.pth",
        path="lib/site-packages/evil.pth",
    )
    modified = Drift(
        DriftKind.MODIFIED_FILE, "beta", "sha256=a", "a fifo; not opened", "fix", path="beta/x.py"
    )
    text = plain(drift_table(report(modified, unowned, deep=DeepSummary(2, 5, 10, scanned=1234))))
    assert text.index("Modified files (1)") < text.index("Unowned files (1)")
    assert (
        "Unowned files (1)\n  - lib/site-packages/evil.pth  expected absent (no installed"
        " distribution lists it)  found a file of 9 bytes; Python runs its import lines at every"
        " start\n  fix: rm -- /p/.venv/lib/site-packages/evil.pth"
    ) in text
    assert (
        "Ownership: 1234 files in site-packages and the scripts directory checked against the"
        " installed distributions' RECORDs."
    ) in text
    assert github_annotations(report(unowned)) == [
        "::error title=poetry-snapshot%3A Unowned files::environment lib/site-packages/evil.pth:"
        " expected absent (no installed distribution lists it), found a file of 9 bytes; Python"
        " runs its import lines at every start. Fix: rm -- /p/.venv/lib/site-packages/evil.pth"
    ]
    validate = validator("drift-report")
    data = json.loads(drift_json(report(unowned, deep=DeepSummary(2, 5, 10, scanned=1234))))
    validate(data)
    assert data["drifts"][0]["kind"] == "unowned-file"
    assert data["deep"]["files_scanned"] == 1234


def test_builds_and_shared_files_are_summed_up_and_listed() -> None:
    deep = DeepSummary(
        4,
        40,
        1024,
        proven=(
            ProvenBuild("alpha", "1.0", "alpha-1.0-py3-none-any.whl"),
            ProvenBuild("fast", "2.0", "fast-2.0.tar.gz", "fast-2.0-cp311-cp311-linux_x86_64.whl"),
        ),
        unproven=(
            UnprovenBuild("mylib", "0.1", "built from a directory: poetry.lock pins no file"),
        ),
        shared=(SharedPath("lib/site-packages/ns/__init__.py", ("nsa", "nsb"), "nsb"),),
        artifact_bytes=3 * 1024 * 1024,
    )
    wrong = Drift(
        DriftKind.WRONG_BUILD,
        "six",
        "sha256=a, 3 bytes in six-1.17.0-py2.py3-none-any.whl",
        "sha256=b, 4 bytes in the installed RECORD",
        "poetry run python -m pip uninstall -y six && poetry sync",
        path="six.py",
    )
    text = plain(drift_table(report(wrong, deep=deep)))
    assert text.index("Wrong builds (1)") < text.index("Deep check:")
    assert (
        "Builds: 2 of 4 locked distributions proven to be the files of a locked artifact (3.0 MiB"
        " of locked files hashed; 1 built by Poetry from a locked sdist); 1 wrong build; 1 build"
        " unverified (-v lists them)."
    ) in text
    assert (
        "Shared files: 1 file installed by several distributions, each holding what one of them"
        " wrote (-v lists them)."
    ) in text
    verbose = plain(drift_table(report(wrong, deep=deep), verbosity=1))
    assert (
        "  build unverified, mylib 0.1: built from a directory: poetry.lock pins no file" in verbose
    )
    assert "  shared, lib/site-packages/ns/__init__.py: nsa, nsb (holds nsb's)" in verbose
    very = plain(drift_table(report(wrong, deep=deep), verbosity=2))
    assert (
        "  build proven, fast 2.0: fast-2.0.tar.gz (Poetry's build"
        " fast-2.0-cp311-cp311-linux_x86_64.whl)"
    ) in very
    data = json.loads(drift_json(report(wrong, deep=deep)))
    validator("drift-report")(data)
    assert data["deep"]["builds_verified"][1] == {
        "package": "fast",
        "version": "2.0",
        "artifact": "fast-2.0.tar.gz",
        "built": "fast-2.0-cp311-cp311-linux_x86_64.whl",
    }
    assert data["deep"]["shared_files"] == [
        {"path": "lib/site-packages/ns/__init__.py", "packages": ["nsa", "nsb"], "matches": "nsb"}
    ]


def test_tolerated_drifts_other_than_extraneous_are_shown_as_such() -> None:
    dynamic = Drift(
        DriftKind.WRONG_VERSION,
        "demo",
        "0.2.0 (dynamic: a plugin set it)",
        "0.1.0",
        "poetry install --only-root",
    )
    tolerated = DriftReport(**{**report().__dict__, "tolerated": (dynamic,)})
    text = plain(drift_table(tolerated))
    assert "Tolerated: demo expected 0.2.0 (dynamic: a plugin set it), found 0.1.0" in text
    assert "--allow-extra" not in text
    assert text.endswith("Environment matches poetry.lock: 12 locked packages checked.")
