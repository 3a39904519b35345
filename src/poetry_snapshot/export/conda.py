"""`--format conda`: a conda environment.yml whose `pip:` section is the locked closure.

The file has a small, fixed shape (`name`, `channels`, `dependencies` with one `pip:` mapping),
so it is written here rather than through a YAML library: every scalar is emitted plain when
YAML 1.1 and 1.2 both read it back as that same string, double-quoted otherwise.

How conda consumes it decides what may go in `pip:`: `conda env create` writes the `pip:` items,
one per line, to a temporary requirements file in the directory of environment.yml and runs
`pip install -U -r <that file>` there (conda/env/installers/pip.py). So requirements-file syntax
is valid (`--hash`, `--index-url`, `-r` relative to environment.yml's directory) and options that
pip only takes on its command line (`--no-deps`) are not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_snapshot.conda_spec import spec_name
from poetry_snapshot.config import CONDA_TABLE
from poetry_snapshot.errors import CondaMetaError
from poetry_snapshot.errors import NoEnvironmentError
from poetry_snapshot.export import requirements
from poetry_snapshot.export.generated_file import GeneratedFile
from poetry_snapshot.export.request import ExportResult
from poetry_snapshot.export.request import header_lines

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_snapshot.check.conda_meta import CondaPrefix
    from poetry_snapshot.config import CondaSettings
    from poetry_snapshot.export.request import ExportRequest


@dataclass(frozen=True)
class CondaEnvironment:
    """Everything environment.yml says, as plain data; `render_environment_yml` writes it."""

    name: str
    channels: tuple[str, ...]
    dependencies: tuple[str, ...]  # conda MatchSpecs, in file order
    pip: tuple[str, ...]  # requirements-file lines
    header: tuple[str, ...] = ()  # comment lines, without "# "


def assemble(
    *,
    name: str,
    settings: CondaSettings,
    python_version: str,
    pip_version: str | None,
    prefix: CondaPrefix | None,
    pip: Iterable[str],
    locked: Iterable[str] | None = None,
    header: Iterable[str] = (),
) -> tuple[CondaEnvironment, list[str]]:
    """Decide environment.yml's content; returns it and warnings for the user.

    Without a conda prefix, python is pinned to the interpreter's version and the declared
    conda dependencies are kept as written. In a conda prefix, python, pip, every declared
    dependency that is installed and every package the user explicitly requested (history) are
    pinned to the installed `version=build`. `locked` are the requirement lines of the lock
    closure when `pip` only references them (`-r sidecar.txt`).
    """
    warnings: list[str] = []
    python = f"python={python_version}"
    pip_spec = "pip" if pip_version is None else f"pip={pip_version}"
    pinned: dict[str, str] = {}
    if prefix is not None:
        record = prefix.package("python")
        if record is None:
            raise CondaMetaError(
                f"{prefix.path} has conda-meta/ but no conda record for python.",
                "Repair or recreate the conda environment.",
            )
        if not _same_release(record.version, python_version):
            raise CondaMetaError(
                f"conda-meta in {prefix.path} records python {record.version}, but the"
                f" interpreter is {python_version}.",
                "Repair or recreate the conda environment.",
            )
        python = record.exact_spec
        pip_record = prefix.package("pip")
        if pip_record is not None:
            pip_spec = pip_record.exact_spec
        for requested in prefix.requested:
            installed = prefix.package(requested)
            if installed is not None and requested not in ("python", "pip"):
                pinned[requested] = installed.exact_spec
    conda: dict[str, str] = {}
    for spec in settings.dependencies:
        dep = spec_name(spec)
        assert dep is not None  # the configuration validated it
        installed = prefix.package(dep) if prefix is not None else None
        if installed is not None:
            conda[dep] = installed.exact_spec
        else:
            conda[dep] = spec
            if prefix is not None:
                warnings.append(
                    f"{dep} is declared in {CONDA_TABLE} but not installed in the conda"
                    f" environment {prefix.path}; exported as declared ({spec!r})."
                )
    for dep, spec in pinned.items():
        conda.setdefault(dep, spec)
    if pip_version is None and "=" not in pip_spec:
        warnings.append("pip is not installed in the project environment; exported unpinned.")
    pip_lines = tuple(pip)
    warnings.extend(_overlaps(conda, pip_lines if locked is None else locked))
    environment = CondaEnvironment(
        name=name,
        channels=settings.channels,
        dependencies=(python, *(conda[dep] for dep in sorted(conda)), pip_spec),
        pip=pip_lines,
        header=tuple(header),
    )
    return environment, warnings


def _same_release(conda_version: str, interpreter_version: str) -> bool:
    # The interpreter reports major.minor.micro; conda may add a pre-release (3.13.0rc1).
    return conda_version == interpreter_version or (
        conda_version.startswith(interpreter_version)
        and not conda_version[len(interpreter_version)].isdigit()
    )


_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)")


def requirement_name(line: str) -> str | None:
    """The project name a requirements-file line installs (None for options and `-e` paths)."""
    if line.startswith("-"):
        return None
    match = _REQUIREMENT_NAME.match(line)
    return canonicalize_name(match.group(1)) if match else None


def _overlaps(conda: Mapping[str, str], pip: Iterable[str]) -> list[str]:
    locked = {name: line for line in pip if (name := requirement_name(line)) is not None}
    warnings = []
    for dep in sorted(conda):
        name = canonicalize_name(dep)
        if name in locked:
            pin = locked[name].split(" ", 1)[0]
            warnings.append(
                f"{dep} is both a conda dependency ({conda[dep]}) and locked in poetry.lock"
                f" ({pin}): pip will install the locked one over conda's."
            )
    return warnings


def render_environment_yml(environment: CondaEnvironment) -> str:
    lines = [f"# {line}" if line else "#" for line in environment.header]
    lines.append(f"name: {yaml_scalar(environment.name)}")
    if environment.channels:
        lines.append("channels:")
        lines.extend(f"  - {yaml_scalar(channel)}" for channel in environment.channels)
    lines.append("dependencies:")
    lines.extend(f"  - {yaml_scalar(spec)}" for spec in environment.dependencies)
    if environment.pip:
        lines.append("  - pip:")
        lines.extend(f"      - {yaml_scalar(line)}" for line in environment.pip)
    return "\n".join(lines) + "\n"


# Plain scalars that every YAML reader (1.1 and 1.2, PyYAML, ruamel) reads back as this string:
# start with a letter or "_" (no numbers, no indicators), no whitespace, no "#" or quotes,
# no ": " (none has spaces), not ending with ":" and not a 1.1 boolean or null word.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-=<>!,*+/@~:()^$]*")
_RESERVED_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yaml_scalar(text: str) -> str:
    """`text` as a YAML scalar that loads back as exactly `text`."""
    if _PLAIN.fullmatch(text) and not text.endswith(":") and text.lower() not in _RESERVED_WORDS:
        return text
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or char in "\u2028\u2029\ufeff"
            or (0xD800 <= code <= 0xDFFF)
        ):
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def export_conda(poetry: Poetry, request: ExportRequest, io: IO) -> ExportResult:
    """environment.yml for the project, from its lock, its settings and its environment."""
    from poetry_snapshot.check.conda_meta import find_conda_prefix
    from poetry_snapshot.check.conda_meta import read_conda_prefix
    from poetry_snapshot.check.environment import Interpreter
    from poetry_snapshot.check.environment import find_project_env

    settings = request.conda
    # The lock and the options first: their errors say more than a missing environment's.
    split = requirements.hashed_and_local(poetry, request, io)
    text = split.hashed
    env = find_project_env(poetry)
    if env is None:
        raise NoEnvironmentError(
            "No project environment: environment.yml pins python to the project"
            " environment's interpreter.",
            "Create it with `poetry sync` (or activate the conda environment), then export.",
        )
    interpreter = Interpreter.of(env)
    prefix_path = find_conda_prefix(_prefix_candidates(env))
    prefix = read_conda_prefix(prefix_path) if prefix_path is not None else None

    extra_files: tuple[GeneratedFile, ...] = ()
    header = header_lines(poetry, request)
    pins = requirements.logical_lines(text)
    pip_lines = pins
    if request.pip_requirements is not None:
        sidecar = request.pip_requirements
        # conda runs pip in environment.yml's directory and pip reads a nested `-r` relative to
        # the including file, which conda also writes there: the path is relative to that dir.
        base = request.output.parent if request.output is not None else Path.cwd()
        pip_lines = (f"-r {_relative(sidecar, base)}",)
        extra_files = (GeneratedFile(sidecar, "".join(f"# {h}\n" for h in header) + text),)
    environment, warnings = assemble(
        name=poetry.package.name,
        settings=settings,
        python_version=interpreter.version,
        pip_version=_installed_version(env, "pip"),
        prefix=prefix,
        pip=pip_lines,
        locked=pins,
        header=header,
    )
    content = render_environment_yml(environment)
    if split.local:
        # conda runs pip once over the whole pip: section (and the files it includes), in
        # hash-checking mode: the local dependencies are a step after `conda env create`.
        name = requirements.output_name(request, "environment.yml")
        content += requirements.local_dependencies_block(
            split.local,
            f"After `conda env create -f {name}`, in that environment"
            f" (`conda activate {poetry.package.name}`):",
            name,
        )
        warnings.append(split.warning(name))
    return ExportResult(content, extra_files, tuple(warnings))


def _prefix_candidates(env: Env) -> list[Path]:
    # A conda env Poetry uses directly (CONDA_PREFIX) is the env itself; a virtualenv made from
    # a conda Python has the conda prefix as its base.
    candidates = [Path(env.path)]
    base = Path(env.base)
    if base != candidates[0]:
        candidates.append(base)
    return candidates


def _installed_version(env: Env, name: str) -> str | None:
    """The version of a distribution installed in the env, read from its site-packages."""
    from importlib.metadata import PathDistribution

    from poetry_snapshot.check.installed_files import metadata_directories

    wanted = canonicalize_name(name)
    for directory in metadata_directories(str(d) for d in env.site_packages.candidates):
        if directory.kind == "dist-info" and directory.name == wanted:
            version = PathDistribution(directory.path).version
            if version:
                return str(version)
    return None


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
