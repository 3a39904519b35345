"""The chain lock -> wheel -> installed RECORD on hand-made wheels, installed by `installer` (the
library Poetry installs with) into a directory laid out like a venv."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from packaging.tags import Tag

from poetry_snapshot.check import scripts
from poetry_snapshot.check.artifacts import ArtifactFinder
from poetry_snapshot.check.artifacts import Candidate
from poetry_snapshot.check.artifacts import Expectation
from poetry_snapshot.check.artifacts import LockedFile
from poetry_snapshot.check.artifacts import _cached_files
from poetry_snapshot.check.builds import BuildContext
from poetry_snapshot.check.builds import BuildVerdict
from poetry_snapshot.check.builds import Schemes
from poetry_snapshot.check.builds import prove
from poetry_snapshot.check.drift import dynamic_version
from poetry_snapshot.check.env_layout import EnvLayout
from poetry_snapshot.check.env_layout import RealDirectories
from poetry_snapshot.check.installed_files import InstalledDistribution
from poetry_snapshot.check.installed_files import check_records
from poetry_snapshot.check.installed_files import own_shebang_lines
from poetry_snapshot.check.installed_files import read_record

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

SITE = "lib/python3.11/site-packages"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    dest: Path,
    files: Mapping[str, bytes],
    *,
    name: str = "pkg",
    version: str = "1.0",
    entry_points: str = "",
    record_override: Mapping[str, str] | None = None,
) -> Path:
    """A wheel of `files` (paths inside the wheel); `record_override` replaces RECORD lines."""
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        members[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in members.items():
        writer.writerow([path, f"sha256={b64(data)}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    text = record.getvalue()
    for path, line in (record_override or {}).items():
        text = "".join(
            (line + "\n") if row.split(",", 1)[0] == path else row + "\n"
            for row in text.splitlines()
        )
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist_info}/RECORD", text)
    return path


class Venv:
    """A directory laid out like a venv, and `installer` installing into it as Poetry does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = root / SITE
        self.bin = root / "bin"
        self.site.mkdir(parents=True)
        self.bin.mkdir()
        self.schemes = {
            "purelib": str(self.site),
            "platlib": str(self.site),
            "scripts": str(self.bin),
            "data": str(root),
            "include": str(root / "include"),
        }
        self.layout = EnvLayout.from_paths(str(root), [str(self.site)], str(self.bin), (3, 11))

    def install(
        self, wheel: Path, installer_name: bytes = b"Poetry 2.5.1"
    ) -> InstalledDistribution:
        from installer import install
        from installer.destinations import SchemeDictionaryDestination
        from installer.sources import WheelFile

        schemes = {**self.schemes, "headers": str(self.root / "include" / "pkg")}
        schemes.pop("include")
        destination = SchemeDictionaryDestination(
            schemes, interpreter=str(self.bin / "python"), script_kind="posix"
        )
        with WheelFile.open(wheel) as source:
            install(source, destination, {"INSTALLER": installer_name})
        dist_info = next(self.site.glob("pkg-*.dist-info"))
        return InstalledDistribution("pkg", dist_info)

    def context(self) -> BuildContext:
        return BuildContext(
            self.layout,
            RealDirectories(self.layout.roots),
            Schemes(self.schemes),
            own_shebang_lines(self.layout),
        )

    def prove(self, dist: InstalledDistribution, *candidates: Candidate) -> BuildVerdict:
        from poetry.core.packages.package import Package

        record = read_record(dist, self.layout)
        expectation = Expectation(Package("pkg", "1.0"), tuple(candidates))
        return prove(record, expectation, self.context())

    def add_record_rows(self, dist: InstalledDistribution, *rows: str) -> None:
        with (dist.dist_info / "RECORD").open("a") as record:
            record.writelines(row + "\n" for row in rows)


def locked(wheel: Path) -> Candidate:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return Candidate(LockedFile(wheel.name, f"sha256:{digest}"), path=str(wheel))


@pytest.fixture
def venv(tmp_path: Path) -> Venv:
    return Venv(tmp_path / "venv")


FILES = {"pkg/__init__.py": b"X = 1\n", "pkg/data.txt": b"data\n"}


def kinds(verdict: BuildVerdict) -> list[tuple[str, str]]:
    return [(p.problem, p.path) for p in verdict.problems]


# --- what is proven -----------------------------------------------------------------------------


def test_installed_wheel_is_proven_with_the_installer_additions_left_out(
    venv: Venv, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(wheel)
    # What installers add: bytecode of the wheel's modules, REQUESTED, direct_url.json.
    pyc = venv.site / "pkg/__pycache__/__init__.cpython-311.pyc"
    pyc.parent.mkdir()
    pyc.write_bytes(b"bytecode")
    (dist.dist_info / "REQUESTED").write_bytes(b"")
    (dist.dist_info / "direct_url.json").write_text("{}")
    venv.add_record_rows(
        dist,
        f"pkg/__pycache__/__init__.cpython-311.pyc,sha256={b64(b'bytecode')},8",
        f"{dist.dist_info.name}/REQUESTED,sha256={b64(b'')},0",
        f"{dist.dist_info.name}/direct_url.json,,",
    )
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.problems == ()
    assert verdict.proof is not None and verdict.proof.artifact == wheel.name
    assert verdict.artifact_bytes == wheel.stat().st_size


@pytest.mark.filterwarnings("ignore:Skip installing:RuntimeWarning")
def test_a_wheels_own_bytecode_may_be_missing(venv: Venv, tmp_path: Path) -> None:
    # installer >= 1.0 skips __pycache__ members; an older one installs them
    wheel = make_wheel(tmp_path / "wheels", {**FILES, "pkg/__pycache__/x.cpython-311.pyc": b"x"})
    dist = venv.install(wheel)
    record = dist.dist_info / "RECORD"
    record.write_text(
        "".join(
            line + "\n" for line in record.read_text().splitlines() if "__pycache__" not in line
        )
    )
    assert venv.prove(dist, locked(wheel)).proof is not None


def test_other_files_in_the_installed_record_are_a_wrong_build(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(wheel)
    (venv.site / "pkg/extra.py").write_bytes(b"E = 1\n")
    venv.add_record_rows(dist, f"pkg/extra.py,sha256={b64(b'E = 1' + bytes([10]))},6")
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.proof is None and verdict.unverified is None
    assert kinds(verdict) == [("wrong-build", "pkg/extra.py")]
    assert verdict.problems[0].expected == f"absent ({wheel.name} has no such file)"


def test_missing_and_different_files_are_a_wrong_build(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    other = make_wheel(tmp_path / "other", {"pkg/__init__.py": b"X = 2\n"})  # same version
    dist = venv.install(other)
    verdict = venv.prove(dist, locked(wheel))
    assert sorted(kinds(verdict)) == [
        ("wrong-build", "pkg/__init__.py"),
        ("wrong-build", "pkg/data.txt"),
    ]
    found = {p.path: p for p in verdict.problems}
    assert found["pkg/data.txt"].found == "not in the installed RECORD"
    assert (
        found["pkg/__init__.py"].expected
        == f"sha256={b64(b'X = 1' + bytes([10]))}, 6 bytes in {wheel.name}"
    )


def test_a_wheel_record_wrong_about_its_member_is_settled_by_the_member(
    venv: Venv, tmp_path: Path
) -> None:
    # Poetry's installer does not validate a wheel's RECORD against its members; it copies
    # the member, so the member's bytes are what the installed file must be.
    wheel = make_wheel(
        tmp_path / "wheels", FILES, record_override={"pkg/data.txt": "pkg/data.txt,sha256=AAAA,5"}
    )
    dist = venv.install(wheel)
    assert venv.prove(dist, locked(wheel)).proof is not None


# --- what cannot be proven: never drift ---------------------------------------------------------


def test_cached_file_without_the_locked_hash_proves_nothing(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(wheel)
    wrong = Candidate(LockedFile(wheel.name, "sha256:" + "0" * 64), path=str(wheel))
    verdict = venv.prove(dist, wrong)
    assert verdict.problems == () and verdict.proof is None
    assert verdict.unverified is not None
    assert verdict.unverified.reason == f"{wheel} does not have poetry.lock's sha256"
    assert not verdict.fetchable


def test_a_wrong_build_needs_every_locked_file_to_have_been_compared(
    venv: Venv, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(make_wheel(tmp_path / "other", {"pkg/__init__.py": b"X = 2\n"}))
    absent = Candidate(LockedFile("pkg-1.0-cp311-cp311-linux_x86_64.whl", "sha256:" + "1" * 64))
    verdict = venv.prove(dist, locked(wheel), absent)
    assert verdict.problems == ()
    assert verdict.unverified is not None and verdict.fetchable
    assert verdict.unverified.reason == (
        "it is none of the 1 locked file found here; pkg-1.0-cp311-cp311-linux_x86_64.whl is"
        " not in Poetry's artifact cache (--fetch downloads it)"
    )
    assert kinds(venv.prove(dist, locked(wheel))) != []  # with every file compared: drift


def test_sdist_without_poetrys_build_proves_nothing(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(wheel)
    sdist = tmp_path / "pkg-1.0.tar.gz"
    sdist.write_bytes(b"an sdist")
    digest = hashlib.sha256(b"an sdist").hexdigest()
    candidate = Candidate(LockedFile(sdist.name, f"sha256:{digest}"), path=str(sdist))
    verdict = venv.prove(dist, candidate)
    assert verdict.unverified is not None and verdict.problems == ()
    assert "Poetry's build of pkg-1.0.tar.gz is no longer in its artifact cache" in (
        verdict.unverified.reason
    )
    built = Candidate(candidate.locked, path=str(sdist), built=str(wheel))
    proof = venv.prove(dist, built).proof
    assert proof is not None and (proof.artifact, proof.built) == (sdist.name, wheel.name)


def test_a_build_conda_installed_is_conda_s(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    conda_build = make_wheel(tmp_path / "conda", {"pkg/__init__.py": b"X = 'conda'\n"})
    dist = venv.install(conda_build, installer_name=b"conda")
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.problems == () and verdict.unverified is not None
    assert verdict.unverified.reason.startswith("installed by conda")


def test_fifo_in_place_of_the_locked_file_is_not_opened(venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", FILES)
    dist = venv.install(wheel)
    fifo = tmp_path / "cache" / wheel.name
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    candidate = Candidate(locked(wheel).locked, path=str(fifo))
    verdict = venv.prove(dist, candidate)  # would block forever if it were opened for reading
    assert verdict.unverified is not None
    assert verdict.unverified.reason == f"{fifo} cannot be read (a fifo)"


# --- scripts ------------------------------------------------------------------------------------

ENTRY_POINTS = "[console_scripts]\ntool = pkg.cli:main\n"
SCRIPT = b"#!python\nprint('copied')\n"


def test_scripts_are_judged_by_their_body_whatever_their_shebang(
    venv: Venv, tmp_path: Path
) -> None:
    files = {**FILES, "pkg/cli.py": b"def main(): pass\n", "pkg-1.0.data/scripts/copied": SCRIPT}
    wheel = make_wheel(tmp_path / "wheels", files, entry_points=ENTRY_POINTS)
    dist = venv.install(wheel)
    for name in ("tool", "copied"):
        script = venv.bin / name
        assert script.read_bytes().startswith(f"#!{venv.bin}/python\n".encode())
        script.write_bytes(b"#!/moved/env/bin/python\n" + script.read_bytes().split(b"\n", 1)[1])
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.proof is not None and verdict.problems == () and verdict.unchecked == ()
    assert verdict.files == 2

    (venv.bin / "tool").write_bytes((venv.bin / "tool").read_bytes() + b"import os\n")
    (venv.bin / "copied").write_bytes(b"#!/usr/bin/python3\nprint('other')\n")
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.proof is not None  # the installed RECORD is still the wheel's
    assert sorted(kinds(verdict)) == [
        ("modified", "../../../bin/copied"),
        ("modified", "../../../bin/tool"),
    ]


def test_without_the_wheel_launchers_are_judged_against_the_installed_entry_points(
    venv: Venv, tmp_path: Path
) -> None:
    files = {**FILES, "pkg/cli.py": b"def main(): pass\n", "pkg-1.0.data/scripts/copied": SCRIPT}
    wheel = make_wheel(tmp_path / "wheels", files, entry_points=ENTRY_POINTS)
    dist = venv.install(wheel)
    for name in ("tool", "copied"):
        script = venv.bin / name
        script.write_bytes(b"#!/moved/env/bin/python\n" + script.read_bytes().split(b"\n", 1)[1])
    nothing = Candidate(LockedFile(wheel.name, "sha256:" + "2" * 64))  # not on this machine
    verdict = venv.prove(dist, nothing)
    assert verdict.problems == ()
    # the launcher is checked; the copied script's body hides behind its rewritten `#!` line
    assert [(u.path, u.reason) for u in verdict.unchecked] == [
        ("../../../bin/copied", "script shebang rewritten")
    ]
    (venv.bin / "tool").write_bytes(b"#!/usr/bin/python3\nimport evil\n")
    assert kinds(venv.prove(dist, nothing)) == [("modified", "../../../bin/tool")]


def test_another_installers_launcher_is_vouched_for_by_record(venv: Venv, tmp_path: Path) -> None:
    files = {**FILES, "pkg/cli.py": b"def main(): pass\n"}
    wheel = make_wheel(tmp_path / "wheels", files, entry_points=ENTRY_POINTS)
    dist = venv.install(wheel, installer_name=b"pip")
    tool = venv.bin / "tool"
    # pip's distlib template, with the env's `#!` line, hashed into RECORD by pip
    pip_launcher = tool.read_bytes().replace(b'"__main__"', b"'__main__'")
    tool.write_bytes(pip_launcher)
    record = dist.dist_info / "RECORD"
    record.write_text(
        "".join(
            (
                f"../../../bin/tool,sha256={b64(pip_launcher)},{len(pip_launcher)}\n"
                if line.startswith("../../../bin/tool,")
                else line + "\n"
            )
            for line in record.read_text().splitlines()
        )
    )
    verdict = venv.prove(dist, locked(wheel))
    assert verdict.problems == () and verdict.unchecked == ()
    tool.write_bytes(pip_launcher + b"import evil\n")
    assert kinds(venv.prove(dist, locked(wheel))) == [("modified", "../../../bin/tool")]


def test_split_shebang() -> None:
    assert scripts.split_shebang(b"#!/env/bin/python\nbody\n") == (
        b"#!/env/bin/python\n",
        b"body\n",
    )
    trampoline = b"#!/bin/sh\n'''exec' '/a b/python' \"$0\" \"$@\"\n' '''\nbody\n"
    assert scripts.split_shebang(trampoline) == (trampoline[: -len(b"body\n")], b"body\n")
    assert scripts.split_shebang(b"print(1)\n") is None
    assert scripts.split_shebang(b"#!/python") == (b"#!/python", b"")


def test_launcher_body_is_installers_for_any_interpreter() -> None:
    from installer.scripts import Script

    entry_point = scripts.EntryPoint("pkg.cli", "main", "console")
    for interpreter in ("/env/bin/python", "/a path with spaces/bin/python", "/" + "x" * 200):
        _, data = Script("tool", "pkg.cli", "main", "console").generate(interpreter, "posix")
        parts = scripts.split_shebang(data)
        assert parts is not None and parts[1] == scripts.launcher_body("tool", entry_point)


def test_copied_script_rules() -> None:
    assert scripts.copied_script_matches(b"#!/env/python\nbody\n", b"#!python\nbody\n")
    assert scripts.copied_script_matches(b"#!/env/python\nbody\n", b"#!pythonw -u\nbody\n")
    assert not scripts.copied_script_matches(b"#!/env/python\nbody2\n", b"#!python\nbody\n")
    assert not scripts.copied_script_matches(b"body\n", b"#!python\nbody\n")
    assert scripts.copied_script_matches(b"#!/bin/sh\necho\n", b"#!/bin/sh\necho\n")
    assert scripts.copied_script_matches(b"binary", b"binary")
    assert not scripts.copied_script_matches(b"binary!", b"binary")
    assert scripts.entry_point_scripts("[console_scripts\nbroken") == {}


# --- files several distributions list ---------------------------------------------------------


def _dist(
    site: Path, name: str, files: Mapping[str, bytes], write: bool = True
) -> InstalledDistribution:
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    rows = []
    for rel, data in files.items():
        if write:
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes(data)
        rows.append(f"{rel},sha256={b64(data)},{len(data)}\n")
    (dist_info / "RECORD").write_text("".join(rows))
    return InstalledDistribution(name, dist_info)


def test_shared_file_holding_one_owners_bytes_is_shared(venv: Venv) -> None:
    first = _dist(venv.site, "first", {"ns/__init__.py": b"# first\n"})
    second = _dist(venv.site, "second", {"ns/__init__.py": b"# second\n"})  # installed last
    layout = venv.layout
    check = check_records([read_record(first, layout), read_record(second, layout)], layout)
    assert check.problems == ()
    assert [(f.packages, f.matches) for f in check.shared] == [(("first", "second"), "second")]
    assert check.files == 1

    (venv.site / "ns/__init__.py").write_bytes(b"# neither\n")
    check = check_records([read_record(first, layout), read_record(second, layout)], layout)
    (problem,) = check.problems
    assert (problem.package, problem.owners) == ("first", ("first", "second"))
    assert problem.expected == (
        f"sha256={b64(b'# first' + bytes([10]))}, 8 bytes (first) or"
        f" sha256={b64(b'# second' + bytes([10]))}, 9 bytes (second)"
    )


def test_shared_with_a_distribution_that_is_not_checked(venv: Venv) -> None:
    locked_one = _dist(venv.site, "mine", {"ns/__init__.py": b"# mine\n"})
    other = _dist(venv.site, "theirs", {"ns/__init__.py": b"# theirs\n", "ns/t.py": b"T\n"})
    layout = venv.layout
    check = check_records(
        [read_record(locked_one, layout)], layout, shared_with=[read_record(other, layout)]
    )
    assert check.problems == ()
    assert [(f.packages, f.matches) for f in check.shared] == [(("mine", "theirs"), "theirs")]
    assert check.files == 1  # theirs's own other files are not checked


# --- which locked files, and where --------------------------------------------------------------


def _package(files: list[str]) -> object:
    from poetry.core.packages.package import Package

    package = Package(
        "pkg",
        "1.0",
        source_type="legacy",
        source_url="https://x/simple",
        source_reference="private",
    )
    package.files = [
        {"file": f, "hash": "sha256:" + hashlib.sha256(f.encode()).hexdigest()} for f in files
    ]
    return package


def _env(*tags: str) -> object:
    from poetry.utils.env import MockEnv

    return MockEnv(
        version_info=(3, 11, 7),
        supported_tags=[Tag(*tag.split("-")) for tag in tags],
    )


def _finder(tmp_path: Path, env: object, **installer: object) -> ArtifactFinder:
    from poetry.config.config import Config

    config = Config()
    config.merge({"cache-dir": str(tmp_path / "cache"), "installer": installer})
    return ArtifactFinder(env, config)  # type: ignore[arg-type]


FILE_SET = [
    "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "pkg-1.0-py3-none-any.whl",
    "pkg-1.0-cp311-cp311-win_amd64.whl",
    "pkg-1.0.tar.gz",
]


def test_candidates_follow_poetrys_chooser(tmp_path: Path) -> None:
    env = _env("cp311-cp311-manylinux_2_17_x86_64", "py3-none-any")
    package = _package(FILE_SET)
    (expectation,) = _finder(tmp_path, env).expect([package]).values()  # type: ignore[list-item]
    # the Chooser's pick, then the other wheels this env supports; the sdist only with
    # Poetry's build of it, and the other platform's wheel never
    assert [c.locked.name for c in expectation.candidates] == [
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pkg-1.0-py3-none-any.whl",
    ]
    assert [c.locked.name for c in expectation.missing] == [
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pkg-1.0-py3-none-any.whl",
    ]


def test_sdist_is_the_candidate_where_poetry_builds_it(tmp_path: Path) -> None:
    package = _package(FILE_SET)
    only_windows = _env("cp311-cp311-musllinux_1_1_x86_64")
    (expectation,) = _finder(tmp_path, only_windows).expect([package]).values()  # type: ignore[list-item]
    assert [c.locked.name for c in expectation.candidates] == ["pkg-1.0.tar.gz"]
    assert expectation.missing == ()  # a downloaded sdist proves nothing without a build

    here = _env("cp311-cp311-manylinux_2_17_x86_64", "py3-none-any")
    no_binary = _finder(tmp_path, here, **{"no-binary": ["pkg"]})
    (expectation,) = no_binary.expect([package]).values()  # type: ignore[list-item]
    assert [c.locked.name for c in expectation.candidates] == ["pkg-1.0.tar.gz"]


def test_files_are_found_in_poetrys_artifact_cache(tmp_path: Path) -> None:
    env = _env("py3-none-any")
    package = _package(["pkg-1.0-py3-none-any.whl", "pkg-1.0.tar.gz"])
    artifacts = tmp_path / "cache" / "artifacts"
    wheel = artifacts / "ab" / "cd" / "ef" / "0123" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"w")
    (artifacts / "ab" / "pkg-1.0-py3-none-any.whl").write_bytes(b"not where Poetry puts them")
    sdist_dir = artifacts / "01" / "23" / "45" / "6789"
    sdist_dir.mkdir(parents=True)
    (sdist_dir / "pkg-1.0.tar.gz").write_bytes(b"s")
    (sdist_dir / "pkg-1.0-py3-none-any.whl").write_bytes(b"Poetry's build")
    (expectation,) = _finder(tmp_path, env).expect([package]).values()  # type: ignore[list-item]
    by_name = {c.locked.name: c for c in expectation.candidates}
    # Poetry's build of the sdist has the locked wheel's name: each copy is tried for its hash
    candidate = by_name["pkg-1.0-py3-none-any.whl"]
    assert {candidate.path, *candidate.others} == {
        str(wheel),
        str(sdist_dir / "pkg-1.0-py3-none-any.whl"),
    }
    assert by_name["pkg-1.0.tar.gz"].built == str(sdist_dir / "pkg-1.0-py3-none-any.whl")
    expected = sorted([str(sdist_dir / "pkg-1.0-py3-none-any.whl"), str(wheel)])
    found = _cached_files(str(artifacts), {"pkg-1.0-py3-none-any.whl"})
    assert found == {"pkg-1.0-py3-none-any.whl": expected}
    with ThreadPoolExecutor(max_workers=3) as pool:  # the subtrees walked in threads
        assert _cached_files(str(artifacts), {"pkg-1.0-py3-none-any.whl"}, pool) == found


def test_cache_walk_follows_no_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "cd" / "ef" / "0123"
    outside.mkdir(parents=True)
    (outside / "pkg-1.0-py3-none-any.whl").write_bytes(b"w")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "ab").symlink_to(tmp_path / "outside")
    assert _cached_files(str(artifacts), {"pkg-1.0-py3-none-any.whl"}) == {}
    assert _cached_files(str(tmp_path / "nowhere"), {"x"}) == {}


# --- the project's version ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pyproject", "version", "dynamic"),
    [
        ({"project": {"version": "1.0"}}, "1.0", None),
        ({"project": {"version": "1.0"}}, "1.0.0", None),  # the same version
        (
            {"project": {"dynamic": ["version"]}},
            "1.0",
            'pyproject.toml lists "version" in [project] dynamic',
        ),
        (
            {
                "tool": {"poetry-dynamic-versioning": {"enable": True}},
                "project": {"version": "0.0.0"},
            },
            "0.0.0",
            "poetry-dynamic-versioning computes it",
        ),
        (
            {
                "tool": {"poetry-dynamic-versioning": {"enable": False}},
                "project": {"version": "1.0"},
            },
            "1.0",
            None,
        ),
        (
            {"tool": {"poetry": {"version": "0.0.0"}}},
            "1.2.3",
            "a plugin set it (pyproject.toml says 0.0.0)",
        ),
        ({"project": {"version": "not a version"}}, "1.0", None),
    ],
)
def test_dynamic_version(pyproject: dict[str, object], version: str, dynamic: str | None) -> None:
    assert dynamic_version(pyproject, version) == dynamic
