"""The environment `poetry run` would use for a project, found without creating one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.errors import EnvironmentInspectionError
from poetry_snapshot.errors import first_line

if TYPE_CHECKING:
    from poetry.poetry import Poetry
    from poetry.utils.env import Env


@dataclass(frozen=True)
class WheelTags:
    """The wheel tags an interpreter accepts, most preferred first (packaging.tags)."""

    interpreter: str  # e.g. cp311
    abi: str  # e.g. cp311
    platforms: tuple[str, ...]  # without "any"


@dataclass(frozen=True)
class Interpreter:
    """The project environment's Python as wheel installers see it: what the drift report, the
    snapshot manifest and the env manifest all record, in one JSON shape
    (schemas/interpreter.schema.json)."""

    version: str  # major.minor.micro
    implementation: str  # platform_python_implementation
    executable: str
    platform: str  # sys.platform
    tags: WheelTags
    markers: tuple[tuple[str, str], ...]  # the PEP 508 marker environment, sorted

    @classmethod
    def of(cls, env: Env) -> Interpreter:
        # Poetry runs the env's own Python once for its markers and derives the tags from
        # them (VirtualEnv.marker_env / supported_tags); both are cached on the Env.
        markers = env.marker_env
        tags = env.supported_tags
        first = tags[0] if tags else None
        return cls(
            version=".".join(str(part) for part in env.version_info[:3]),
            implementation=str(markers["platform_python_implementation"]),
            executable=str(env.python),
            platform=str(markers["sys_platform"]),
            tags=WheelTags(
                interpreter=first.interpreter if first else "",
                abi=first.abi if first else "",
                platforms=tuple(dict.fromkeys(t.platform for t in tags if t.platform != "any")),
            ),
            markers=tuple(sorted((k, str(v)) for k, v in markers.items() if _recorded(k, v))),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "implementation": self.implementation,
            "executable": self.executable,
            "platform": self.platform,
            "tags": {
                "interpreter": self.tags.interpreter,
                "abi": self.tags.abi,
                "platforms": list(self.tags.platforms),
            },
            "markers": dict(self.markers),
        }


def _recorded(key: str, value: object) -> bool:
    # Poetry adds tuples (version_info) to the PEP 508 markers; keep the strings. The kernel's
    # release and build string describe the machine, not the environment: a kernel update
    # must not make a manifest stale.
    return isinstance(value, str) and key not in ("platform_release", "platform_version")


def find_project_env(poetry: Poetry, sync: str = "poetry sync") -> Env | None:
    """The env `poetry run` would use, or None where `poetry run` would have to create one.

    Relies on `EnvManager.get()`: it returns the active virtualenv (VIRTUAL_ENV / CONDA_PREFIX),
    the in-project `.venv`, or the project's env under `virtualenvs.path`, and falls back to the
    system env when none exists. Poetry's `configure_env` listener calls `create_venv()` instead,
    which would build a venv as a side effect, so commands here are not `EnvCommand`s.
    """
    from poetry.utils.env import EnvManager

    try:
        env = EnvManager(poetry).get()
    except Exception as e:  # e.g. no compatible Python found while naming the env
        raise EnvironmentInspectionError(
            f"Cannot determine the project's environment: {first_line(e)}",
            "Run `poetry env info` to see what Poetry finds.",
        ) from None
    # EnvManager.create_venv() keeps what get() found when it is a sane venv, or when venv
    # creation is off; otherwise `poetry run` would create (or recreate) one.
    if not env.path.is_dir() or not env.is_sane():
        return None  # e.g. an activated VIRTUAL_ENV that no longer exists
    if not env.is_venv() and poetry.config.get("virtualenvs.create", True):
        return None
    try:
        env.marker_env  # noqa: B018 - runs the env's interpreter once; fails if it is broken
    except Exception as e:
        raise EnvironmentInspectionError(
            f"The project environment at {env.path} does not run: {first_line(e)}",
            f"Recreate it with `poetry env remove --all && {sync}`.",
        ) from None
    return env
