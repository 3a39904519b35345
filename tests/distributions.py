"""Tiny real distributions built inside the tests: hand-written wheels and repacked installs."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass
from dataclasses import field
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def dist_escape(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


@dataclass
class WheelSpec:
    """What goes into a hand-written wheel."""

    name: str
    version: str
    requires: list[str] = field(default_factory=list)
    extras: dict[str, list[str]] = field(default_factory=dict)
    requires_python: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    console_scripts: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, bytes] = field(default_factory=dict)  # into {dist}.data/scripts/
    padding: int = 0  # bytes of filler in a data file, for size benchmarks

    def metadata_text(self) -> str:
        lines = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}"]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines.extend(f"Requires-Dist: {req}" for req in self.requires)
        for extra, reqs in self.extras.items():
            lines.append(f"Provides-Extra: {extra}")
            lines.extend(f'Requires-Dist: {req} ; extra == "{extra}"' for req in reqs)
        return "\n".join(lines) + "\n\n"


def build_wheel(spec: WheelSpec, dest: Path) -> Path:
    """Write a pure-Python wheel for `spec` into `dest`; returns its path."""
    module = dist_escape(spec.name)
    dist_info = f"{module}-{spec.version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": f'__version__ = "{spec.version}"\n'.encode(),
    }
    if spec.console_scripts:
        files[f"{module}/cli.py"] = (
            b"import sys\n\ndef main():\n    print(__name__, sys.argv[1:])\n    return 0\n"
        )
    if spec.padding:
        # Incompressible filler (a hash chain): big on disk and in the archive alike.
        block = bytearray()
        seed = spec.name.encode()
        while len(block) < spec.padding:
            seed = hashlib.sha256(seed).digest()
            block += seed
        files[f"{module}/data.bin"] = bytes(block[: spec.padding])
    files.update(spec.files)
    for script, body in spec.scripts.items():
        files[f"{module}-{spec.version}.data/scripts/{script}"] = body
    files[f"{dist_info}/METADATA"] = spec.metadata_text().encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: poetry-snapshot-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    if spec.console_scripts:
        entry_points = "[console_scripts]\n" + "".join(
            f"{script} = {target}\n" for script, target in spec.console_scripts.items()
        )
        files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    return _write_wheel(dest / f"{module}-{spec.version}-py3-none-any.whl", files, dist_info)


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> Path:
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, record.getvalue())
    tmp.replace(path)
    return path


def repack_installed(distribution: str, dest: Path) -> Path:
    """A wheel made from an installed pure-Python distribution (e.g. poetry-core).

    Lets tests serve a build backend from the local index without downloading it.
    """
    dist = metadata.distribution(distribution)
    base = Path(str(dist.locate_file("")))
    dist_info_dir = Path(str(dist._path)).name  # type: ignore[attr-defined]
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        name = entry.as_posix()
        if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
            continue
        if name.startswith(dist_info_dir) and name.rsplit("/", 1)[-1] in (
            "RECORD",
            "INSTALLER",
            "REQUESTED",
            "direct_url.json",
        ):
            continue
        files[name] = (base / name).read_bytes()
    version = dist.version
    module = dist_escape(dist.metadata["Name"])
    return _write_wheel(dest / f"{module}-{version}-py3-none-any.whl", files, dist_info_dir)
