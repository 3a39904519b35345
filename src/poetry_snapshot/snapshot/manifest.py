"""The snapshot manifest: everything needed to reproduce a run, as versioned JSON.

Stored at `.snapshot/manifest.json` inside each snapshot, written once before the snapshot is
published and never rewritten: how each run of a command went is recorded beside it, one file
per run (run_record.py). Later features (history list/diff/rerun/prune, Slurm, reproducing a
run in a fresh env) read it, so fields only ever get added within a schema version. Version 2:
the outcome of the run moved from `command` to `.snapshot/runs/`. Version 3: `interpreter` is
the one interpreter description of every document (tags as interpreter, ABI and platforms,
and the marker environment), as in the drift report and the env manifest.

Layout: the header fields first, pretty-printed; then `"files"`, one entry per line, so a
100,000-file manifest is written and read (for `--link`) without holding it as one document.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from operator import attrgetter
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.atomic import atomic_writer_at
from poetry_snapshot.snapshot.copier import CopiedFile
from poetry_snapshot.snapshot.layout import DIFF_NAME
from poetry_snapshot.snapshot.layout import MANIFEST_NAME
from poetry_snapshot.snapshot.layout import METADATA_DIR

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path

    from poetry_snapshot.check.drift import DriftReport
    from poetry_snapshot.check.environment import Interpreter
    from poetry_snapshot.snapshot.editables import EditableInstall
    from poetry_snapshot.snapshot.git_facts import GitInfo

SCHEMA_VERSION = 3

# Environment variable values are never recorded, except these: they name the job and the
# devices a run used, and experiment trackers key on them. Nothing here holds a secret.
ENV_ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_CLUSTER_NAME",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST",
    "PBS_JOBID",
    "LSB_JOBID",
)


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    version: str
    source_dir: str
    relative_cwd: str  # where the user stood, relative to the project root ('.' at the root)


@dataclass(frozen=True)
class LockInfo:
    lock_sha256: str
    pyproject_sha256: str
    content_hash: str | None  # poetry.lock's metadata.content-hash


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    source_type: str | None  # None: an index; else file, directory, url, git
    source_url: str | None
    source_reference: str | None  # the resolved commit for git
    editable: bool


@dataclass(frozen=True)
class Verification:
    mode: str  # "verified", "drift-allowed" (--allow-drift) or "skipped" (--no-verify)
    report: DriftReport | None


@dataclass(frozen=True)
class CopySummary:
    selection: str  # "git" or "filesystem"
    files: int
    bytes: int
    bytes_copied: int
    bytes_linked: int
    files_linked: int
    linked_from: str | None  # the snapshot id --link deduplicated against
    skipped: tuple[tuple[str, str], ...]  # (path, reason)
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    id: str
    created: datetime
    user: str
    host: str
    project: ProjectInfo
    tools: Mapping[str, str]
    interpreter: Interpreter | None
    lock: LockInfo
    groups: tuple[str, ...]
    extras: tuple[str, ...]
    with_root: bool
    verification: Verification
    packages: tuple[InstalledPackage, ...]
    git: GitInfo | None
    environment: Mapping[str, str]
    copy: CopySummary
    tree_sha256: str
    files: Sequence[CopiedFile]
    argv: tuple[str, ...] | None = None  # the command the snapshot was taken to run
    snapshot_finished: datetime | None = None
    editables: tuple[EditableInstall, ...] = ()  # every editable install in the env

    def header_json(self) -> dict[str, Any]:
        """Everything but the file list."""
        interpreter = None if self.interpreter is None else self.interpreter.to_json()
        report = self.verification.report
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "created": _iso(self.created),
            "snapshot_finished": _iso(self.snapshot_finished) if self.snapshot_finished else None,
            "user": self.user,
            "host": self.host,
            "project": dataclasses.asdict(self.project),
            "tools": dict(self.tools),
            "interpreter": interpreter,
            "lock": dataclasses.asdict(self.lock),
            "groups": list(self.groups),
            "extras": list(self.extras),
            "with_root": self.with_root,
            "verification": {
                "mode": self.verification.mode,
                "report": None if report is None else report.to_json(),
            },
            "packages": [dataclasses.asdict(p) for p in self.packages],
            "editables": [e.to_json() for e in self.editables],
            "git": None if self.git is None else self.git.to_json(f"{METADATA_DIR}/{DIFF_NAME}"),
            "environment": dict(sorted(self.environment.items())),
            "copy": {
                **dataclasses.asdict(self.copy),
                "skipped": [{"path": p, "reason": r} for p, r in self.copy.skipped],
                "warnings": list(self.copy.warnings),
            },
            "tree_sha256": self.tree_sha256,
            # Only what the snapshot was taken to run; each run records itself in runs/.
            "command": None if self.argv is None else {"argv": list(self.argv)},
        }

    def write(self, snapshot_dir: Path) -> Path:
        """Write `.snapshot/manifest.json`, once, before the snapshot is published."""
        meta = snapshot_dir / METADATA_DIR
        meta.mkdir(exist_ok=True)
        fd = os.open(meta, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.write_at(fd)
        finally:
            os.close(fd)
        return meta / MANIFEST_NAME

    def write_at(self, metadata: int) -> None:
        """Write manifest.json in the metadata directory open as `metadata`."""
        head = json.dumps(self.header_json(), indent=2)
        assert head.endswith("\n}")
        # Not fsync'ed: the copied files are not either (a power cut can tear a snapshot
        # whatever the manifest does, and its hashes then tell); the rename keeps it whole
        # against crashed and killed processes, and an fsync would cost every run its wait.
        with atomic_writer_at(metadata, MANIFEST_NAME, durable=False) as stream:
            stream.write(head[:-2].encode("utf-8"))
            stream.write(b',\n  "files": [')
            # In slices: the lines of 100,000 files, joined and encoded at once, would cost
            # three copies of the whole list (~90 MB) at the peak of a snapshot's memory.
            files = self.files
            for start in range(0, len(files), _LINES_PER_WRITE):
                lines = [file_line(entry) for entry in files[start : start + _LINES_PER_WRITE]]
                prefix = "\n    " if start == 0 else ",\n    "
                stream.write((prefix + ",\n    ".join(lines)).encode("ascii"))
            stream.write(b"\n  ]\n}\n")


def file_json(entry: CopiedFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": entry.path,
        "type": entry.kind,
        "size": entry.size,
        "mode": f"{entry.mode:04o}",
        "sha256": entry.sha256.hex() if entry.sha256 is not None else None,
        "target": entry.link_target,
        "mtime_ns": entry.mtime_ns,
        "linked": entry.linked,
        # The source's stat signature: lets the next --link skip re-hashing unchanged files.
        "stat": [entry.ctime_ns, entry.inode, entry.device],
        # The snapshot's own copy as it left it: the next --link links only a copy whose
        # lstat still shows this (ctime cannot be set back), so no edit inside it goes unseen.
        "copy_stat": (
            None
            if entry.copy_inode is None
            else [entry.copy_ctime_ns, entry.copy_inode, entry.copy_device]
        ),
    }
    raw = os.fsencode(entry.path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: "path" round-trips in Python (surrogate escapes); this is exact for all.
        data["path_b64"] = base64.b64encode(raw).decode("ascii")
    return data


# json.dumps(..., separators=(",", ":")) of file_json(), formatted directly: the same bytes
# (ensure_ascii escapes through the same encoder), at a fifth of the cost per file, which
# matters at 20,000 files a snapshot.
_string = json.encoder.encode_basestring_ascii
_LINES_PER_WRITE = 2048


def file_line(entry: CopiedFile) -> str:
    """One file record as the manifest stores it: file_json(entry) as compact JSON."""
    digest = "null" if entry.sha256 is None else f'"{entry.sha256.hex()}"'
    target = "null" if entry.link_target is None else _string(entry.link_target)
    copy_stat = (
        "null"
        if entry.copy_inode is None
        else f"[{entry.copy_ctime_ns},{entry.copy_inode},{entry.copy_device}]"
    )
    line = (
        f'{{"path":{_string(entry.path)},"type":"{entry.kind}","size":{entry.size},'
        f'"mode":"{entry.mode:04o}","sha256":{digest},"target":{target},'
        f'"mtime_ns":{entry.mtime_ns},"linked":{"true" if entry.linked else "false"},'
        f'"stat":[{entry.ctime_ns},{entry.inode},{entry.device}],"copy_stat":{copy_stat}'
    )
    if not entry.path.isascii() and not _is_utf8(entry.path):
        line += f',"path_b64":"{base64.b64encode(os.fsencode(entry.path)).decode("ascii")}"'
    return line + "}"


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")  # surrogate escapes (bytes that are not UTF-8) fail here
    except UnicodeEncodeError:
        return False
    return True


def _file_from_json(data: Mapping[str, Any]) -> CopiedFile:
    path = os.fsdecode(base64.b64decode(data["path_b64"])) if "path_b64" in data else data["path"]
    ctime_ns, inode, device = data.get("stat") or (0, 0, 0)
    # Absent from manifests written before it was recorded: such copies are never linked.
    copy_ctime_ns, copy_inode, copy_device = data.get("copy_stat") or (None, None, None)
    digest = data.get("sha256")
    # Positional: this runs once per file of the previous snapshot on every --link.
    return CopiedFile(
        path,
        data["type"],
        data["size"],
        int(data["mode"], 8),
        data["mtime_ns"],
        bytes.fromhex(digest) if digest else None,
        data.get("target"),
        data.get("linked", False),
        ctime_ns,
        inode,
        device,
        copy_ctime_ns,
        copy_inode,
        copy_device,
    )


def read_header(snapshot_dir: Path) -> dict[str, Any]:
    """The manifest without its file list (cheap: stops reading where the list begins)."""
    path = snapshot_dir / METADATA_DIR / MANIFEST_NAME
    lines: list[str] = []
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if line.startswith('  "files": ['):
                text = "".join(lines).rstrip().rstrip(",") + "\n}"
                return dict(json.loads(text))
            lines.append(line)
    return dict(json.loads("".join(lines)))


def read_files(snapshot_dir: Path) -> dict[str, CopiedFile]:
    """The file records of a snapshot, by path: the list parsed in one go from where it
    begins, without the header."""
    path = snapshot_dir / METADATA_DIR / MANIFEST_NAME
    text = path.read_text(encoding="utf-8")
    with _no_cyclic_gc():  # 20,000 dicts, then records, none of them in a cycle
        return _parse_files(text)


def _parse_files(text: str) -> dict[str, CopiedFile]:
    start = text.find('\n  "files": [')
    if start < 0:  # written by something else: a full parse
        records = json.loads(text).get("files", [])
    else:
        body = text[start + len('\n  "files": ') :].rstrip()
        if not body.endswith("}"):
            raise ValueError("the manifest ends before its file list does")
        records = json.loads(body[:-1])
    files = {}
    for data in records:
        entry = _file_from_json(data)
        files[entry.path] = entry
    return files


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def tree_digest(files: Iterable[CopiedFile]) -> str:
    """One sha256 over the whole tree. Entries are taken in order of path (as Python orders the
    str: UTF-8 byte order for UTF-8 names, bytes that are not UTF-8 as their surrogate escapes);
    each one feeds these bytes: the raw path bytes, NUL; the type (`file` or `symlink`), NUL;
    the mode as four octal digits, NUL; the content (a file's sha256 as 64 lowercase hex digits,
    a symlink's raw target bytes), newline. Equal trees give equal digests anywhere."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=attrgetter("path")):
        content = entry.sha256.hex() if entry.sha256 is not None else (entry.link_target or "")
        digest.update(os.fsencode(entry.path) + b"\0")
        digest.update(f"{entry.kind}\0{entry.mode:04o}\0".encode())
        digest.update(os.fsencode(content) + b"\n")
    return digest.hexdigest()


def allowed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: environ[key] for key in ENV_ALLOWLIST if key in environ}


def now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
