"""Which files a snapshot holds: real git builds every tree and is the oracle for both backends."""

from __future__ import annotations

import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Union

import pytest

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.snapshot.selection import TOO_BIG_FILES
from poetry_snapshot.snapshot.selection import SelectedEntry
from poetry_snapshot.snapshot.selection import Selection
from poetry_snapshot.snapshot.selection import SelectionRules
from poetry_snapshot.snapshot.selection import SkippedEntry
from poetry_snapshot.snapshot.selection import select
from poetry_snapshot.snapshot.selection.gitignore import compile_pattern
from poetry_snapshot.snapshot.selection.gitignore import read_lines
from poetry_snapshot.snapshot.selection.rules import PatternFile
from poetry_snapshot.snapshot.selection.rules import Rules

if TYPE_CHECKING:
    from collections.abc import Iterator

    from poetry_snapshot.snapshot.selection.gitignore import Pattern

Name = Union[str, bytes]
GIT_BACKENDS = ["binary", "dulwich"]
CAFE = b"caf\xe9.txt"  # Latin-1 bytes: not valid UTF-8


@pytest.fixture(autouse=True)
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME, XDG config and identity of our own: the user's git config never leaks in."""
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def git(cwd: Path, *args: str) -> bytes:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, *paths: str, force: bool = False) -> None:
    git(repo, "add", *(["-f"] if force else []), "--", *paths)
    git(repo, "commit", "-q", "-m", "commit")


def write(root: Path, name: Name, content: bytes = b"x") -> Path:
    path = root / os.fsdecode(name)  # surrogateescape: written back as the original bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def paths(selection: Selection) -> list[str]:
    return [e.path for e in selection.entries]


def names(*items: Name) -> list[str]:
    return sorted(os.fsdecode(i) for i in items)


def git_view(directory: Path) -> set[str]:
    """The oracle: what `git ls-files --cached --others --exclude-standard` lists and is on
    disk, nested repositories and submodules by their own listing."""
    found: set[str] = set()
    out = git(directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for raw in filter(None, out.split(b"\0")):
        name = os.fsdecode(raw.rstrip(b"/"))
        full = directory / name
        if full.is_dir() and not full.is_symlink():
            if (full / ".git").exists():
                found |= {f"{name}/{inner}" for inner in git_view(full)}
        elif os.path.lexists(full):
            found.add(name)
    return found


def select_both(root: Path, rules: SelectionRules | None = None) -> Selection:
    """Select with the git binary and with dulwich; they must agree on everything."""
    rules = rules or SelectionRules()
    binary = select(root, rules, git="binary")
    dulwich = select(root, rules, git="dulwich")
    assert (binary.source, dulwich.source) == ("git", "git")
    assert (binary.git_backend, dulwich.git_backend) == ("binary", "dulwich")
    assert dulwich.entries == binary.entries
    assert dulwich.skipped == binary.skipped
    assert dulwich.warnings == binary.warnings
    return binary


# --- git semantics: both backends against git itself -----------------------------------------


TRICKY_GITIGNORE = """\
*.log
!important.log
build/
/only-root.txt
docs/**/generated
cache/*
!cache/keep.txt
**/tmp
data/
!data/keep.csv
logs/
\\#hash.txt
*.py[co]
vendor/**
!vendor/lib/
!vendor/lib/**
config/
"""


def tricky_tree(root: Path, home: Path) -> list[str]:
    """A work tree exercising git's ignore rules; returns what git selects from it."""
    init(root)
    write(root, ".gitignore", TRICKY_GITIGNORE.encode())
    write(root, "pkg/.gitignore", b"!debug.log\n*.tmp\n/local/\n")
    write(root, ".git/info/exclude", b"secret.txt\n")
    write(home / "config", "git/ignore", b"*.swp\n")  # the default core.excludesFile
    selected = [
        ".gitignore",
        "pkg/.gitignore",
        "README.md",
        "important.log",
        "sub/important.log",
        "src/only-root.txt",
        "docs/index.md",
        "cache/keep.txt",
        "logs",
        "m.py",
        "vendor/lib/l.txt",
        "pkg/debug.log",
        "pkg/deep/debug.log",
        "pkg/sub/local/a.txt",
        "with space.txt",
        "src/a/b/c/deep.py",
        "build/keep.bin",
        CAFE,
    ]
    left_out = [
        "app.log",
        "sub/other.log",
        "build/out.bin",
        "src/build/x.py",
        "only-root.txt",
        "docs/a/generated/g.html",
        "docs/generated/g.html",
        "cache/junk",
        "src/tmp/t.txt",
        "tmp/t.txt",
        "data/keep.csv",
        "data/big.csv",
        "src/logs/l.txt",
        "#hash.txt",
        "m.pyc",
        "vendor/other/o.txt",
        "pkg/x.tmp",
        "pkg/local/a.txt",
        "secret.txt",
        "src/secret.txt",
        "notes.swp",
        b"caf\xe9.log",
        "config/local.toml",
        "config/other.toml",
    ]
    for name in selected[2:] + left_out + ["tracked.txt"]:  # all but the two .gitignore
        write(root, name, b"content of " + os.fsencode(name))
    commit(root, "README.md", "tracked.txt")
    commit(root, "build/keep.bin", force=True)  # tracked although ignored: still selected
    (root / "tracked.txt").unlink()  # tracked but deleted: not selected
    return names(*selected)


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_git_rules_select_what_git_lists(project: Path, git_home: Path, backend: str) -> None:
    expected = tricky_tree(project, git_home)
    assert sorted(git_view(project)) == expected  # the tree means what we think it means
    selection = select(project, git=backend)
    assert paths(selection) == expected
    assert selection.source == "git"
    assert selection.skipped == () and selection.warnings == ()


def test_both_backends_give_identical_selections(project: Path, git_home: Path) -> None:
    tricky_tree(project, git_home)
    selection = select_both(project)
    entry = next(e for e in selection.entries if e.path == "README.md")
    st = os.lstat(project / "README.md")
    assert entry == SelectedEntry(
        "README.md",
        "file",
        st.st_size,
        stat.S_IMODE(st.st_mode),
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
        None,
        st.st_blocks,
    )


def test_info_exclude_outranks_core_excludes_file(project: Path, git_home: Path) -> None:
    init(project)
    excludes = git_home / "my-excludes"
    excludes.write_text("*.bak\nlocal-*\n")
    git(project, "config", "--global", "core.excludesFile", "~/my-excludes")
    write(project, ".git/info/exclude", b"!keep.bak\n")
    for name in ("a.bak", "keep.bak", "local-x.txt", "main.py"):
        write(project, name)
    expected = ["keep.bak", "main.py"]
    assert sorted(git_view(project)) == expected
    assert paths(select_both(project)) == expected


@pytest.mark.parametrize("value", ["yes", "on", "1", "true", "no", "off", "0", "perhaps"])
def test_core_ignorecase_in_any_spelling_is_read_or_one_clear_error(
    project: Path, value: str
) -> None:
    # git accepts yes/on/1; some dulwich releases cannot read such a config at all (their index
    # reader raises). Either the selection is git's, or one SelectionError: never a traceback.
    init(project)
    write(project, ".gitignore", b"Build/\n")
    write(project, "build/out.txt")
    write(project, "src/a.py")
    if value != "perhaps":
        assert set(paths(select(project, git="binary"))) == git_view(project)
    git(project, "config", "core.ignorecase", value)
    try:
        selection = select(project, git="dulwich")
    except SelectionError as e:
        assert "\n" not in str(e) and value in str(e)
    else:
        assert value != "perhaps"
        assert set(paths(selection)) == set(paths(select(project, git="binary")))


def test_deeper_gitignore_outranks_info_exclude(project: Path) -> None:
    init(project)
    write(project, ".git/info/exclude", b"*.dat\n")
    write(project, "raw/.gitignore", b"!*.dat\n")
    write(project, "raw/a.dat")
    write(project, "b.dat")
    expected = ["raw/.gitignore", "raw/a.dat"]
    assert sorted(git_view(project)) == expected
    assert paths(select_both(project)) == expected


def test_symlinked_exclude_files_are_followed_a_symlinked_gitignore_is_not(
    project: Path, git_home: Path, tmp_path: Path
) -> None:
    init(project)
    write(tmp_path, "dotfiles/ignore", b"*.swp\n")
    write(tmp_path, "dotfiles/exclude", b"secret.txt\n")
    write(tmp_path, "dotfiles/gitignore", b"*.log\n")
    (git_home / "config/git").mkdir(parents=True)
    (git_home / "config/git/ignore").symlink_to(tmp_path / "dotfiles/ignore")
    (project / ".git/info").mkdir(exist_ok=True)
    (project / ".git/info/exclude").unlink(missing_ok=True)
    (project / ".git/info/exclude").symlink_to(tmp_path / "dotfiles/exclude")
    (project / ".gitignore").symlink_to(tmp_path / "dotfiles/gitignore")
    for name in ("a.swp", "secret.txt", "app.log", "main.py"):
        write(project, name)
    expected = [".gitignore", "app.log", "main.py"]
    assert sorted(git_view(project)) == expected
    assert paths(select_both(project)) == expected


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_an_exclude_file_that_is_a_directory_is_an_error_as_in_git(
    project: Path, git_home: Path, backend: str
) -> None:
    init(project)
    write(project, "main.py")
    (git_home / "config/git/ignore").mkdir(parents=True)
    with pytest.raises(SelectionError) as error:
        select(project, git=backend)
    assert "as an exclude file" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_root_below_the_top_of_the_work_tree(project: Path, backend: str) -> None:
    init(project)
    write(project, ".gitignore", b"*.log\n/app/cache/\n")
    write(project, "app/.gitignore", b"!keep.log\n")
    for name in (
        "app/main.py",
        "app/x.log",
        "app/keep.log",
        "app/cache/c",
        "app/sub/y.py",
        "other/o.py",
        "top.py",
    ):
        write(project, name)
    commit(project, "top.py", "app/main.py")
    root = project / "app"
    selection = select(root, git=backend)
    expected = [".gitignore", "keep.log", "main.py", "sub/y.py"]
    assert sorted(git_view(root)) == expected
    assert paths(selection) == expected
    assert selection.root == root.resolve()


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_root_inside_an_ignored_directory_keeps_only_tracked_files(
    project: Path, backend: str
) -> None:
    init(project)
    write(project, ".gitignore", b"generated/\n")
    write(project, "generated/tracked.txt")
    write(project, "generated/new.txt")
    commit(project, "generated/tracked.txt", force=True)
    root = project / "generated"
    assert sorted(git_view(root)) == ["tracked.txt"]
    selection = select(root, git=backend)
    assert paths(selection) == ["tracked.txt"]
    if backend == "binary":  # said out loud: an ignored project silently loses its new files
        assert any(
            "lies in a directory its git repository ignores" in w for w in selection.warnings
        )


def submodule_tree(project: Path, tmp_path: Path) -> None:
    """project -> submodule `libs/b` (own .gitignore) -> submodule `c`; all initialised."""
    git(project.parent, "config", "--global", "protocol.file.allow", "always")
    c = init(tmp_path / "upstream-c")
    write(c, "c.py")
    commit(c, "c.py")
    b = init(tmp_path / "upstream-b")
    write(b, ".gitignore", b"*.cache\n")
    write(b, "b.py")
    commit(b, ".gitignore", "b.py")
    git(b, "submodule", "add", "-q", str(c), "c")
    git(b, "commit", "-q", "-m", "add c")
    init(project)
    write(project, ".gitignore", b"*.tmp\n")
    write(project, "main.py")
    commit(project, ".gitignore", "main.py")
    git(project, "submodule", "add", "-q", str(b), "libs/b")
    git(project, "commit", "-q", "-m", "add b")
    git(project, "submodule", "update", "-q", "--init", "--recursive")
    sub = project / "libs/b"
    write(sub, "new.py")  # untracked in the submodule: selected
    write(sub, "x.cache")  # ignored by the submodule's own .gitignore
    write(sub, "c/new-in-c.py")
    (sub / "b.py").unlink()  # tracked in the submodule but deleted


def test_submodules_are_selected_recursively_by_their_own_rules(
    project: Path, tmp_path: Path
) -> None:
    submodule_tree(project, tmp_path)
    expected = [
        ".gitignore",
        ".gitmodules",
        "libs/b/.gitignore",
        "libs/b/.gitmodules",
        "libs/b/c/c.py",
        "libs/b/c/new-in-c.py",
        "libs/b/new.py",
        "main.py",
    ]
    assert sorted(git_view(project)) == expected
    selection = select_both(project)
    assert paths(selection) == expected
    assert not any(".git" in p.split("/") for p in paths(selection))  # .git files stay out


def test_an_uninitialised_submodule_contributes_nothing(project: Path, tmp_path: Path) -> None:
    submodule_tree(project, tmp_path)
    git(project, "submodule", "deinit", "-q", "-f", "libs/b")
    assert paths(select_both(project)) == [".gitignore", ".gitmodules", "main.py"]


def test_nested_repository_is_selected_by_its_own_rules_with_a_warning(project: Path) -> None:
    init(project)
    write(project, "main.py")
    nested = init(project / "vendored")
    write(nested, ".gitignore", b"*.o\n")
    write(nested, "lib.c")
    write(nested, "lib.o")
    expected = ["main.py", "vendored/.gitignore", "vendored/lib.c"]
    assert sorted(git_view(project)) == expected
    selection = select_both(project)
    assert paths(selection) == expected
    assert selection.warnings == (
        "'vendored/' is a git repository but not a submodule; its files are selected by its own"
        " rules",
    )


def test_linked_worktree_uses_the_shared_info_exclude(project: Path, tmp_path: Path) -> None:
    init(project)
    write(project, "main.py")
    commit(project, "main.py")
    write(project, ".git/info/exclude", b"*.secret\n")
    linked = tmp_path / "linked"
    git(project, "worktree", "add", "-q", str(linked), "-b", "other")
    write(linked, "new.py")
    write(linked, "key.secret")
    assert sorted(git_view(linked)) == ["main.py", "new.py"]
    assert paths(select_both(linked)) == ["main.py", "new.py"]


def test_conflicted_paths_are_selected_once(project: Path) -> None:
    init(project)
    write(project, "f.txt", b"base\n")
    commit(project, "f.txt")
    git(project, "checkout", "-q", "-b", "other")
    write(project, "f.txt", b"other\n")
    commit(project, "f.txt")
    git(project, "checkout", "-q", "main")
    write(project, "f.txt", b"main\n")
    commit(project, "f.txt")
    subprocess.run(["git", "merge", "-q", "other"], cwd=project, capture_output=True, check=False)
    assert b"f.txt" in git(project, "diff", "--name-only", "--diff-filter=U")
    assert paths(select_both(project)) == ["f.txt"]


def test_tracked_file_behind_a_symlinked_directory_is_not_selected(project: Path) -> None:
    init(project)
    write(project, "d/f.txt")
    commit(project, "d/f.txt")
    write(project, "elsewhere/f.txt")
    shutil.rmtree(project / "d")
    (project / "d").symlink_to("elsewhere")
    selection = select_both(project)
    # git lists d/f.txt as tracked; selecting it would follow the link.
    assert paths(selection) == ["d", "elsewhere/f.txt"]
    assert selection.entries[0].kind == "symlink"


# Patterns and names for the randomised comparison; they collide on purpose.
_FUZZ_NAMES = ["a", "b", "x.py", "y.log", "keep.log", "z.tmp", "build", "tmp", "c"]
_FUZZ_PATTERNS = [
    "*.log",
    "!keep.log",
    "build/",
    "build",
    "/a",
    "b/",
    "**/tmp",
    "a/**/x.py",
    "*.tmp",
    "!*.tmp",
    "c/*",
    "!c/x.py",
    "**/b/**",
    "!/b/",
    "x.py",
    "[xy].py",
    "?.py",
    "a/b/",
    "/c/a",
    "!a",
    "tmp/",
    "!tmp/",
    "*",
    "!*/",
    "a/**",
    "!a/b/**",
    "**/c",
    "!**/x.py",
    "/*",
    "!/c",
]


@pytest.mark.parametrize("seed", range(30))
def test_dulwich_agrees_with_git_on_random_trees(tmp_path: Path, git_home: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = init(tmp_path / "fuzz")
    dirs = [""]
    for _ in range(rng.randint(3, 8)):
        parent = rng.choice(dirs)
        child = f"{parent}/{rng.choice(_FUZZ_NAMES)}" if parent else rng.choice(_FUZZ_NAMES)
        if child not in dirs and not (root / child).exists():
            (root / child).mkdir(parents=True)
            dirs.append(child)
    for _ in range(rng.randint(8, 20)):
        directory = rng.choice(dirs)
        name = f"{directory}/{rng.choice(_FUZZ_NAMES)}" if directory else rng.choice(_FUZZ_NAMES)
        if not (root / name).exists():
            write(root, name)
    for directory in rng.sample(dirs, k=min(len(dirs), rng.randint(1, 3))):
        lines = rng.sample(_FUZZ_PATTERNS, k=rng.randint(1, 6))
        write(
            root,
            f"{directory}/.gitignore" if directory else ".gitignore",
            "\n".join(lines).encode() + b"\n",
        )
    write(root, ".git/info/exclude", "\n".join(rng.sample(_FUZZ_PATTERNS, k=2)).encode())
    write(git_home / "config", "git/ignore", "\n".join(rng.sample(_FUZZ_PATTERNS, k=2)).encode())
    files = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    tracked = rng.sample(files, k=rng.randint(0, len(files) // 3))
    if tracked:
        commit(root, *tracked, force=True)
    assert paths(select_both(root)) == sorted(git_view(root))


# --- filesystem rules ---------------------------------------------------------------------------


def test_outside_git_everything_but_the_defaults(project: Path) -> None:
    kept = [
        "main.py",
        "src/pkg/mod.py",
        "src/build/gen.py",
        "src/dist/d.txt",
        "build.py",
        "logs/x.log",
        "docs/dist",
        ".env",
        ".venv-notes.txt",
    ]
    dropped = [
        "sub/.git",
        "other/.git/HEAD",
        "src/pkg/__pycache__/mod.cpython-311.pyc",
        ".pytest_cache/v",
        ".mypy_cache/m",
        "src/.ruff_cache/r",
        ".tox/py/t",
        ".nox/n",
        "build/lib/x.py",
        "dist/pkg.whl",
        "src/pkg.egg-info/PKG-INFO",
        "old.egg-info",
        ".venv/pyvenv.cfg",
        ".venv/lib/site.py",
        "tools/env/pyvenv.cfg",
        "tools/env/bin/python",
    ]
    for name in kept + dropped:
        write(project, name)
    selection = select(project)
    assert selection.source == "filesystem" and selection.git_backend is None
    assert paths(selection) == sorted(kept)
    assert selection.warnings == () and selection.skipped == ()


def test_git_off_ignores_the_work_tree(project: Path) -> None:
    init(project)
    write(project, ".gitignore", b"*.log\n")
    write(project, "a.log")
    selection = select(project, git="off")
    assert selection.source == "filesystem"
    assert paths(selection) == [".gitignore", "a.log"]


# --- include, exclude, excluded directories -----------------------------------------------------


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_include_brings_back_an_ignored_file_inside_an_ignored_directory(
    project: Path, backend: str
) -> None:
    init(project)
    write(project, ".gitignore", b"config/\n*.local\n")
    for name in (
        "main.py",
        "config/local.toml",
        "config/other.toml",
        "config/deep/local.toml",
        "settings.local",
        "sub/settings.local",
    ):
        write(project, name)
    rules = SelectionRules(include=("config/local.toml", "**/deep/*.toml", "/*.local"))
    selection = select(project, rules, git=backend)
    assert paths(selection) == [
        ".gitignore",
        "config/deep/local.toml",
        "config/local.toml",
        "main.py",
        "settings.local",
    ]


def test_include_brings_back_what_the_filesystem_defaults_leave_out(project: Path) -> None:
    for name in (
        "main.py",
        "build/local.toml",
        "build/other.toml",
        ".venv/pyvenv.cfg",
        "src/__pycache__/keep.pyc",
        "src/__pycache__/drop.pyc",
    ):
        write(project, name)
    rules = SelectionRules(include=("local.toml", "pyvenv.cfg", "keep.pyc"))
    selection = select(project, rules)
    assert paths(selection) == [
        ".venv/pyvenv.cfg",
        "build/local.toml",
        "main.py",
        "src/__pycache__/keep.pyc",
    ]
    assert selection.warnings == (
        "'.venv/' is a virtualenv and is selected; ignore it in .gitignore or exclude it",
    )


def test_include_negation_and_directory_patterns(project: Path) -> None:
    init(project)
    write(project, ".gitignore", b"secrets/\n")
    for name in ("secrets/a.cfg", "secrets/b.cfg", "secrets/key.pem", "secrets/sub/c.cfg"):
        write(project, name)
    some = SelectionRules(include=("secrets/*", "!*.pem"))
    assert paths(select_both(project, some)) == [
        ".gitignore",
        "secrets/a.cfg",
        "secrets/b.cfg",
        "secrets/sub/c.cfg",
    ]
    # As in .gitignore, nothing below a matched directory can be negated back out.
    whole = SelectionRules(include=("secrets/", "!*.pem"))
    assert "secrets/key.pem" in paths(select_both(project, whole))


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_exclude_removes_and_wins_over_include(project: Path, backend: str) -> None:
    init(project)
    write(project, ".gitignore", b"*.env\n")
    for name in (
        "main.py",
        "data/raw/a.csv",
        "data/small.csv",
        "data/big.csv",
        "notes.md",
        "docs/notes.md",
        "prod.env",
    ):
        write(project, name)
    rules = SelectionRules(
        include=("prod.env",), exclude=("data/*", "!data/small.csv", "/notes.md", "*.env")
    )
    selection = select(project, rules, git=backend)
    assert paths(selection) == [".gitignore", "data/small.csv", "docs/notes.md", "main.py"]


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_excluded_dirs_are_never_entered(project: Path, backend: str) -> None:
    init(project)
    write(project, "main.py")
    write(project, "snapshots/abc/main.py")
    write(project, "snapshots/abc/.snapshot/manifest.json")
    write(project, "keep/snapshots/k.py")
    rules = SelectionRules(excluded_dirs=(project / "snapshots",))
    selection = select(project, rules, git=backend)
    assert paths(selection) == ["keep/snapshots/k.py", "main.py"]
    assert selection.skipped == (SkippedEntry("snapshots", "excluded directory"),)
    relative = select(project, SelectionRules(excluded_dirs=(Path("snapshots"),)), git=backend)
    assert paths(relative) == paths(selection)
    outside = SelectionRules(excluded_dirs=(project.parent / "elsewhere",))
    assert "snapshots/abc/main.py" in paths(select(project, outside, git=backend))


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_a_symlink_to_an_excluded_directory_is_excluded_too(
    project: Path, tmp_path: Path, backend: str
) -> None:
    init(project)
    write(project, "main.py")
    write(tmp_path, "scratch/snapshots/abc/main.py")
    (project / "snapshots").symlink_to(tmp_path / "scratch/snapshots")
    rules = SelectionRules(excluded_dirs=(project / "snapshots",))
    selection = select(project, rules, git=backend)
    assert paths(selection) == ["main.py"] and selection.warnings == ()


def test_excluding_the_project_itself_is_an_error(project: Path) -> None:
    with pytest.raises(SelectionError, match="is the project"):
        select(project, SelectionRules(excluded_dirs=(project,)))


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_a_root_snapshot_directory_is_reserved(project: Path, backend: str) -> None:
    init(project)
    write(project, ".snapshot/manifest.json")
    write(project, "sub/.snapshot/kept.txt")
    write(project, "main.py")
    selection = select(project, git=backend)
    assert paths(selection) == ["main.py", "sub/.snapshot/kept.txt"]
    assert selection.skipped == (SkippedEntry(".snapshot", "reserved for snapshot metadata"),)
    assert len(selection.warnings) == 1 and "'.snapshot' at the project root" in selection.warnings[0]


def test_invalid_pattern_is_a_one_line_error(project: Path) -> None:
    with pytest.raises(SelectionError) as error:
        select(project, SelectionRules(exclude=("data/[abc",)))
    assert "data/[abc" in str(error.value) and "\n" not in str(error.value)


# --- the rules, one decision for every backend ---------------------------------------------------


def _naive_covered(patterns: list[Pattern], rel: str, is_dir: bool) -> bool:
    """gitignore's verdict from its definition: the path or one of its directories is matched
    last by a pattern that is not a negation."""
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth]).encode()
        last = next(
            (p for p in reversed(patterns) if p.matches(path, is_dir or depth < len(parts))),
            None,
        )
        if last is not None and not last.negated:
            return True
    return False


def _naive_selects(rules: SelectionRules, rel: str, by_base: bool, is_dir: bool = False) -> bool:
    """What SelectionRules mean for one root-relative path, written from their definition."""
    parts = rel.split("/")
    excluded = {".snapshot", *(str(d) for d in rules.excluded_dirs)}
    if any("/".join(parts[:depth]) in excluded for depth in range(1, len(parts) + 1)):
        return False
    exclude = [compile_pattern(line) for line in read_lines("\n".join(rules.exclude).encode())]
    if _naive_covered(exclude, rel, is_dir):
        return False
    include = [compile_pattern(line) for line in read_lines("\n".join(rules.include).encode())]
    return by_base or _naive_covered(include, rel, is_dir)


def _random_rules(rng: random.Random, dirs: list[str]) -> SelectionRules:
    return SelectionRules(
        include=tuple(rng.sample(_FUZZ_PATTERNS, k=rng.randint(0, 3))),
        exclude=tuple(rng.sample(_FUZZ_PATTERNS, k=rng.randint(0, 3))),
        excluded_dirs=tuple(Path(d) for d in rng.sample(dirs, k=min(len(dirs), rng.randint(0, 2)))),
    )


def test_rules_decide_a_path_the_same_however_it_is_reached() -> None:
    """Walks ask about each directory before its files, git listings ask about files alone:
    `Rules` gives every path the verdict the definition gives it, either way."""
    rng = random.Random(0)
    names = [*_FUZZ_NAMES, ".snapshot", ".snapshots"]
    for _ in range(300):
        files = {"/".join(rng.choice(names) for _ in range(rng.randint(1, 4))) for _ in range(20)}
        dirs = sorted({f.rsplit("/", 1)[0] for f in files if "/" in f})
        rules = _random_rules(rng, dirs)
        walked = Rules.of(b"/nonexistent", rules)  # excluded_dirs are relative: never resolved
        listed = Rules.of(b"/nonexistent", rules)
        for rel in sorted(files):
            parents = ["/".join(rel.split("/")[:d]) for d in range(1, rel.count("/") + 1)]
            entered = all(walked.enters(p.encode()) for p in parents)
            for p in parents:
                assert walked.enters(p.encode()) == _naive_selects(rules, p, True, True), (rules, p)
            for by_base in (True, False):
                expected = _naive_selects(rules, rel, by_base)
                assert listed.selects(rel.encode(), by_base) == expected, (rules, rel, by_base)
                assert walked.selects(rel.encode(), by_base) == expected, (rules, rel, by_base)
                assert entered or not expected, (rules, rel)


@pytest.mark.parametrize("seed", range(20))
def test_rules_apply_alike_in_every_backend_on_random_trees(
    tmp_path: Path, git_home: Path, seed: int
) -> None:
    rng = random.Random(seed)
    root = init(tmp_path / "fuzz")
    names = [*_FUZZ_NAMES, ".snapshot"]
    dirs = [""]
    for _ in range(rng.randint(3, 8)):
        parent = rng.choice(dirs)
        child = f"{parent}/{rng.choice(names)}" if parent else rng.choice(names)
        if child not in dirs and not (root / child).exists():
            (root / child).mkdir(parents=True)
            dirs.append(child)
    for _ in range(rng.randint(8, 20)):
        directory = rng.choice(dirs)
        name = f"{directory}/{rng.choice(names)}" if directory else rng.choice(names)
        if not (root / name).exists():
            write(root, name)
    write(root, ".gitignore", "\n".join(rng.sample(_FUZZ_PATTERNS, k=3)).encode() + b"\n")
    files = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    tracked = rng.sample(files, k=rng.randint(0, len(files) // 2))
    if tracked:
        commit(root, *tracked, force=True)  # tracked files inside excluded directories too
    rules = _random_rules(rng, dirs[1:])
    in_git = git_view(root)
    expected = sorted(f for f in files if _naive_selects(rules, f, f in in_git))
    assert paths(select_both(root, rules)) == expected
    # Outside git the base is every file but `build/` at the root (the only default here).
    outside = sorted(f for f in files if _naive_selects(rules, f, not f.startswith("build/")))
    assert paths(select(root, rules, git="off")) == outside


def test_tracked_files_and_submodules_in_excluded_directories_stay_out(
    project: Path, tmp_path: Path
) -> None:
    submodule_tree(project, tmp_path)
    write(project, "snapshots/old/main.py")
    commit(project, "snapshots/old/main.py")  # tracked: listed by git, not found by a walk
    rules = SelectionRules(excluded_dirs=(Path("snapshots"), Path("libs/b/c")))
    selection = select_both(project, rules)
    assert paths(selection) == [
        ".gitignore",
        ".gitmodules",
        "libs/b/.gitignore",
        "libs/b/.gitmodules",
        "libs/b/new.py",
        "main.py",
    ]
    assert selection.skipped == (
        SkippedEntry("libs/b/c", "excluded directory"),
        SkippedEntry("snapshots", "excluded directory"),
    )
    # A whole submodule, and a nested one, removed by exclude patterns instead.
    assert paths(select_both(project, SelectionRules(exclude=("libs/",)))) == [
        ".gitignore",
        ".gitmodules",
        "main.py",
        "snapshots/old/main.py",
    ]
    assert "libs/b/c/c.py" not in paths(
        select_both(project, SelectionRules(exclude=("/libs/b/c",)))
    )


# --- names, links and special files -----------------------------------------------------------


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_names_that_are_not_utf8_survive(project: Path, backend: str) -> None:
    init(project)
    write(project, CAFE, b"bonjour")
    write(project, b"d\xe9j\xe0/vu.txt")
    write(project, "new\nline.txt")
    write(project, ".gitignore", b"*\xe9.log\n")
    write(project, b"th\xe9.log")  # ignored by a pattern that is not UTF-8 either
    selection = select(project, git=backend)
    expected = [b".gitignore", CAFE, b"d\xe9j\xe0/vu.txt", b"new\nline.txt"]
    if backend == "off":
        expected.append(b"th\xe9.log")
    assert [os.fsencode(p) for p in paths(selection)] == sorted(expected)
    for entry in selection.entries:
        assert os.path.lexists(os.fsencode(project) + b"/" + os.fsencode(entry.path))
    assert next(e for e in selection.entries if os.fsencode(e.path) == CAFE).size == 7


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_symlinks_are_entries_never_followed(project: Path, tmp_path: Path, backend: str) -> None:
    init(project)
    write(tmp_path, "outside/secret.txt")
    write(project, "real/file.txt")
    write(project, ".gitignore", b"__pycache__/\n")
    write(project, "__pycache__/m.pyc")
    links = {
        "to-file": "real/file.txt",
        "to-dir": "real",
        "out-relative": "../outside/secret.txt",
        "out-absolute": str(tmp_path / "outside"),
        "in-absolute": str(project / "real/file.txt"),
        "dangling": "missing.txt",
        "loop-a": "loop-b",
        "loop-b": "loop-a",
        "to-ignored": "__pycache__/m.pyc",
        "chain": "to-file",
    }
    for name, target in links.items():
        (project / name).symlink_to(target)
    selection = select(project, git=backend)
    entries = {e.path: e for e in selection.entries}
    assert sorted(entries) == sorted([".gitignore", "real/file.txt", *links])
    for name, target in links.items():
        entry = entries[name]
        assert (entry.kind, entry.link_target, entry.size) == ("symlink", target, len(target))
    assert entries["real/file.txt"].kind == "file"
    assert not any(p.startswith("to-dir/") for p in entries)
    warned = {w.split(" ")[1].strip("'"): w for w in selection.warnings}
    assert sorted(warned) == sorted(
        [
            "out-relative",
            "out-absolute",
            "in-absolute",
            "dangling",
            "loop-a",
            "loop-b",
            "to-ignored",
        ]
    )
    assert "outside the project" in warned["out-relative"]
    assert "outside the project" in warned["out-absolute"]
    assert "absolute" in warned["in-absolute"]
    assert "dangling" in warned["dangling"]
    assert "loop" in warned["loop-a"] and "loop" in warned["loop-b"]
    assert "not selected" in warned["to-ignored"]


def test_symlink_loop_of_directories_does_not_hang(project: Path) -> None:
    (project / "a").mkdir()
    (project / "a/to-b").symlink_to("../b")
    (project / "b").mkdir()
    (project / "b/to-a").symlink_to("../a")
    (project / "self").symlink_to(".")
    selection = select(project, SelectionRules(include=("**",)))
    assert paths(selection) == ["a/to-b", "b/to-a", "self"]


def test_fifos_and_sockets_are_skipped_with_a_warning(project: Path) -> None:
    write(project, "main.py")
    os.mkfifo(project / "pipe")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(project / "sock"))
        selection = select(project)
    finally:
        server.close()
    assert paths(selection) == ["main.py"]
    assert selection.skipped == (SkippedEntry("pipe", "fifo"), SkippedEntry("sock", "socket"))
    assert selection.warnings == (
        "'pipe': skipped, a fifo cannot be copied",
        "'sock': skipped, a socket cannot be copied",
    )


def test_a_warning_about_a_name_with_a_newline_stays_one_line(project: Path) -> None:
    write(project, "main.py")
    os.mkfifo(project / "evil\nname\x1b[31m")
    [warning] = select(project).warnings
    assert warning == "'evil\\nname\\x1b[31m': skipped, a fifo cannot be copied"


def test_git_sees_no_untracked_fifo_but_reports_a_tracked_file_now_a_fifo(project: Path) -> None:
    init(project)
    write(project, "was-a-file")
    commit(project, "was-a-file")
    (project / "was-a-file").unlink()
    os.mkfifo(project / "was-a-file")
    os.mkfifo(project / "new-pipe")  # git lists no fifo: not part of git's view
    selection = select_both(project)
    assert paths(selection) == []
    assert selection.skipped == (SkippedEntry("was-a-file", "fifo"),)


def test_selected_virtualenv_is_warned_about(project: Path) -> None:
    init(project)
    write(project, "venv/pyvenv.cfg")
    write(project, "venv/lib/site.py")
    selection = select_both(project)
    assert "venv/pyvenv.cfg" in paths(selection)
    assert selection.warnings == (
        "'venv/' is a virtualenv and is selected; ignore it in .gitignore or exclude it",
    )


# --- sizes -----------------------------------------------------------------------------------


def test_sizes_largest_files_and_directories(project: Path) -> None:
    for name, size in [
        ("a.txt", 10),
        ("data/raw/x.bin", 5000),
        ("data/raw/y.bin", 3000),
        ("data/z.bin", 100),
        ("src/m.py", 200),
        ("src/pkg/n.py", 300),
    ]:
        write(project, name, b"x" * size)
    (project / "link").symlink_to("a.txt")
    selection = select(project)
    assert selection.total_bytes == 8610 and selection.file_count == 7
    assert [e.path for e in selection.largest_files(2)] == ["data/raw/x.bin", "data/raw/y.bin"]
    assert selection.largest_directories(10) == [("data", 8100, 3), ("src", 500, 2), (".", 10, 2)]
    assert selection.largest_directories(2, depth=2) == [("data/raw", 8000, 2), ("src/pkg", 300, 1)]
    assert not selection.too_big()


def test_more_than_a_gibibyte_is_too_big(project: Path) -> None:
    with open(project / "sparse.bin", "wb") as f:
        f.truncate((1 << 30) + 1)  # sparse: no disk space used
    selection = select(project)
    assert selection.total_bytes == (1 << 30) + 1 and selection.too_big()


def test_more_than_fifty_thousand_files_is_too_big(project: Path) -> None:
    entry = SelectedEntry("f", "file", 1, 0o644, 0, 0, 0, 0, None, 8)
    at_limit = Selection(project, "filesystem", (entry,) * TOO_BIG_FILES, (), ())
    assert not at_limit.too_big()
    over = Selection(project, "filesystem", (entry,) * (TOO_BIG_FILES + 1), (), ())
    assert over.too_big()


# --- choosing a backend, and errors ----------------------------------------------------------


def test_auto_uses_the_binary_then_dulwich_then_the_filesystem(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init(project)
    write(project, ".gitignore", b"*.log\n")
    write(project, "a.log")
    write(project, "main.py")
    assert select(project).git_backend == "binary"
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    dulwich = select(project)
    assert (dulwich.source, dulwich.git_backend) == ("git", "dulwich")
    assert paths(dulwich) == [".gitignore", "main.py"]
    with pytest.raises(SelectionError, match="no `git` on PATH"):
        select(project, git="binary")
    plain = tmp_path / "plain"
    write(plain, "a.log")
    assert select(plain).source == "filesystem"


def test_unknown_git_mode_is_a_programming_error(project: Path) -> None:
    with pytest.raises(ValueError, match="git must be one of"):
        select(project, git="yes")


@pytest.mark.parametrize("backend", GIT_BACKENDS)
def test_broken_repository_is_a_one_line_error(project: Path, backend: str) -> None:
    write(project, ".git", b"gitdir: /nonexistent/repository\n")
    write(project, "main.py")
    with pytest.raises(SelectionError) as error:
        select(project, git=backend)
    assert "\n" not in str(error.value) and isinstance(error.value, SnapshotError)


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match="is not a directory"):
        select(tmp_path / "missing")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's own base directory is private to us)."""
    path = Path(tempfile.mkdtemp(prefix="selection-"))
    path.chmod(0o755)
    yield path
    for inner in path.rglob("*"):
        if inner.is_dir() and not inner.is_symlink():
            inner.chmod(0o755)
    shutil.rmtree(path)


def select_unprivileged(root: Path, backend: str, rules: SelectionRules | None = None) -> str:
    """select() where an unreadable directory really is unreadable: under root, in a forked
    child that became nobody. Forked rather than exec'ed: the interpreter may live where
    nobody cannot reach it, so everything the child needs is imported before it forks."""
    import dulwich.index
    import dulwich.repo  # noqa: F401

    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "65534:65534", str(root.parent)], check=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.environ.update(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent))
            try:
                found = select(root, rules or SelectionRules(), git=backend)
                message = f"OK {paths(found)} {list(found.warnings)}"
            except SelectionError as e:
                message = f"ERROR {e}"
        except BaseException as e:
            message = f"CRASH {e!r}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_unreadable_directory_is_one_clear_error(shared_tmp: Path, backend: str) -> None:
    root = shared_tmp / "project"
    init(root)
    write(root, "main.py")
    write(root, "app/locked/secret.py")
    write(root, "app/ok.py")
    (root / "app/locked").chmod(0)
    output = select_unprivileged(root / "app", backend)
    assert output == (
        f"ERROR Cannot read directory '{root}/app/locked': Permission denied."
        " Make it readable, or exclude it from the snapshot."
    )


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_excluded_directories_are_not_even_read(shared_tmp: Path, backend: str) -> None:
    root = shared_tmp / "project"
    init(root)
    write(root, "main.py")
    write(root, "snapshots/locked/x.py")
    (root / "snapshots/locked").chmod(0)
    rules = SelectionRules(excluded_dirs=(Path("snapshots"),))
    assert select_unprivileged(root, backend, rules) == "OK ['main.py'] []"


@pytest.mark.parametrize("backend", [*GIT_BACKENDS, "off"])
def test_unreadable_ignored_directory_is_fine(shared_tmp: Path, backend: str) -> None:
    root = shared_tmp / "project"
    init(root)
    write(root, ".gitignore", b".tox/\n")  # .tox is also left out by default outside git
    write(root, "main.py")
    write(root, ".tox/volume/x.py")
    (root / ".tox/volume").chmod(0)
    assert select_unprivileged(root, backend) == "OK ['.gitignore', 'main.py'] []"
    # Looking for include matches in an unreadable ignored directory is a warning, not an error.
    assert select_unprivileged(root, backend, SelectionRules(include=("*.py",))) == (
        "OK ['.gitignore', 'main.py'] [\"'.tox/volume/': not searched for include patterns"
        " (Permission denied)\"]"
    )


def test_pattern_prefilter_never_hides_a_match() -> None:
    extra = ["\\#x", "\\!y", "a b", "*.PY", "d/**/e/", "**", "/", "!", "f**g", "[!a]*"]
    lines = [p.encode() for p in [*_FUZZ_PATTERNS, *extra]]
    patterns = PatternFile(lines, ignorecase=False, strict="test")
    rng = random.Random(0)
    for _ in range(3000):
        rel = "/".join(
            rng.choice([*_FUZZ_NAMES, "#x", "!y", "a b", "d", "e", "fzzg"])
            for _ in range(rng.randint(1, 4))
        ).encode()
        is_dir = rng.random() < 0.3
        naive = next((p for p in reversed(patterns.patterns) if p.matches(rel, is_dir)), None)
        assert patterns.last_match(rel, is_dir) is naive, (rel, is_dir)
