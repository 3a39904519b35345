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
    tag: str = "py3-none-any"  # the wheel's compatibility tag (another platform's, say)

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
    purelib = "true" if spec.tag.endswith("-none-any") else "false"
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: poetry-snapshot-tests\n"
        f"Root-Is-Purelib: {purelib}\nTag: {spec.tag}\n"
    ).encode()
    if spec.console_scripts:
        entry_points = "[console_scripts]\n" + "".join(
            f"{script} = {target}\n" for script, target in spec.console_scripts.items()
        )
        files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    return _write_wheel(dest / f"{module}-{spec.version}-{spec.tag}.whl", files, dist_info)


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


# A PEP 517 backend shipped inside an sdist (`backend-path`, no build requirements: builds
# offline in any isolated build env): the package's C extension compiled with gcc, or, without
# gcc or with EXTENSION_PURE=1 in the environment, the pure-Python fallback. Like many real
# packages with optional speedups, both builds carry the same version.
_EXTENSION_BACKEND = r"""
import base64, csv, hashlib, io, os, shutil, subprocess, sys, sysconfig, tempfile, zipfile

NAME, VERSION = {name!r}, {version!r}
MODULE = NAME.replace("-", "_")


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _compiled():
    if os.environ.get("EXTENSION_PURE") == "1" or shutil.which("gcc") is None:
        return None
    out = os.path.join(tempfile.mkdtemp(), "_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    source = os.path.join(MODULE, "_speedups.c")
    include = sysconfig.get_paths()["include"]
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-I", include, source, "-o", out], check=True)
    with open(out, "rb") as f:
        return f.read()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(MODULE, "__init__.py"), "rb") as f:
        files = {{MODULE + "/__init__.py": f.read()}}
    library = _compiled()
    if library is None:
        tag, purelib = "py3-none-any", "true"
    else:
        python = "cp%d%d" % sys.version_info[:2]
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        tag, purelib = "-".join([python, python, platform]), "false"
        files[MODULE + "/_speedups" + sysconfig.get_config_var("EXT_SUFFIX")] = library
    dist_info = "%s-%s.dist-info" % (MODULE, VERSION)
    files[dist_info + "/METADATA"] = (
        "Metadata-Version: 2.1\nName: %s\nVersion: %s\n\n" % (NAME, VERSION)
    ).encode()
    files[dist_info + "/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: extension-backend\nRoot-Is-Purelib: %s\nTag: %s\n"
        % (purelib, tag)
    ).encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        writer.writerow([member, "sha256=" + digest.decode(), len(data)])
    writer.writerow([dist_info + "/RECORD", "", ""])
    files[dist_info + "/RECORD"] = record.getvalue().encode()
    name = "%s-%s-%s.whl" % (MODULE, VERSION, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in files.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return name
"""

_EXTENSION_INIT = b"""try:
    from ._speedups import add
    COMPILED = True
except ImportError:  # the pure-Python fallback
    def add(a, b):
        return a + b
    COMPILED = False
"""

_EXTENSION_C = b"""#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
"""


def build_extension_sdist(name: str, version: str, dest: Path) -> Path:
    """An sdist of a package with an optional C extension and its own build backend."""
    import tarfile
    import textwrap

    module = dist_escape(name)
    base = f"{module}-{version}"
    members = {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
        f"{base}/pyproject.toml": textwrap.dedent(
            """\
            [build-system]
            requires = []
            build-backend = "extension_backend"
            backend-path = ["."]
            """
        ).encode(),
        f"{base}/extension_backend.py": _EXTENSION_BACKEND.format(
            name=name, version=version
        ).encode(),
        f"{base}/{module}/__init__.py": _EXTENSION_INIT,
        f"{base}/{module}/_speedups.c": _EXTENSION_C,
    }
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in sorted(members.items()):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1577836800
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def build_extension_wheel(sdist: Path, dest: Path, *, pure: bool = False) -> Path:
    """The wheel `sdist`'s backend builds (compiled with gcc, or the pure fallback), built in a
    subprocess of this interpreter, as a build frontend would."""
    import os
    import subprocess
    import sys
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(work, filter="data")
            else:  # Python < 3.11.4; our own archive
                archive.extractall(work)
        (source,) = Path(work).iterdir()
        dest.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "EXTENSION_PURE": "1" if pure else "0"}
        built = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, extension_backend as b; print(b.build_wheel(sys.argv[1]))",
                str(dest),
            ],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return dest / built.stdout.strip()
