"""The one way this tool runs git: the binary on PATH, about the repository at hand only.

Every git call (file selection, git facts) goes through `Git`, so that none of them can read
variables that point git at another repository (a caller inside a git hook or alias, or a
shell with GIT_DIR exported), or answer in a language the parsing does not expect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from dataclasses import field
from typing import IO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Union

    Argument = Union[str, bytes]
    Directory = Union[str, bytes, os.PathLike[str]]

# Variables that point git at another repository or index: dropped, the way git drops them
# itself before it runs a command in a submodule (`git rev-parse --local-env-vars` lists
# them; GIT_CONFIG* are left alone: they carry configuration, not a repository). Each command
# then describes the repository holding its working directory, as dulwich does.
REPOSITORY_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_GRAFT_FILE",
        "GIT_SHALLOW_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
    }
)


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the repository variables; English messages (some are recognised by
    their text), and no optional locks: reading must never rewrite the index of a repository
    someone else may be working in."""
    env = {k: v for k, v in environ.items() if k not in REPOSITORY_VARIABLES}
    env.update(LC_ALL="C", LANGUAGE="", GIT_OPTIONAL_LOCKS="0")
    return env


@dataclass(frozen=True)
class Git:
    """The git binary and the environment every call runs in."""

    binary: str
    environ: Mapping[str, str] = field(repr=False)

    @classmethod
    def find(cls) -> Git | None:
        """The `git` on PATH, or None when there is none."""
        binary = shutil.which("git")
        return None if binary is None else cls(binary, git_environment(os.environ))

    def run(
        self,
        cwd: Directory,
        *args: Argument,
        env: Mapping[str, str] | None = None,
        stdout: IO[bytes] | int = subprocess.PIPE,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `git ARGS` in `cwd` with stdin closed and stderr captured; `env` adds variables
        on purpose (a throwaway GIT_INDEX_FILE). Raises OSError when git cannot be started."""
        return subprocess.run(
            [os.fsencode(self.binary), *(os.fsencode(a) for a in args)],
            cwd=cwd,
            env={**self.environ, **env} if env else self.environ,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
        )

    def output(
        self, cwd: Directory, *args: Argument, env: Mapping[str, str] | None = None
    ) -> bytes | None:
        """The standard output of `git ARGS`, or None when it fails or cannot be started."""
        try:
            result = self.run(cwd, *args, env=env)
        except OSError:
            return None
        return result.stdout if result.returncode == 0 else None
