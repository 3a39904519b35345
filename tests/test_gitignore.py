"""gitignore patterns against git itself: `git check-ignore --no-index` is the oracle.

Every case is a .gitignore of its own in a directory of its own, holding the case's path as a
file or a directory; one `git check-ignore` run answers all of them. The verdict includes the
path's directories, as git decides: nothing below an ignored directory comes back.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from typing import TYPE_CHECKING
from typing import NamedTuple

import pytest

from poetry_snapshot.snapshot.selection.gitignore import InvalidPattern
from poetry_snapshot.snapshot.selection.gitignore import compile_pattern
from poetry_snapshot.snapshot.selection.gitignore import read_lines

if TYPE_CHECKING:
    from pathlib import Path


class Case(NamedTuple):
    gitignore: bytes  # the whole file
    path: bytes  # relative to the .gitignore
    is_dir: bool
    ignored: bool  # what git says


F, D = False, True  # is_dir

CASES = [
    # '*' and '?' never match '/'; a pattern without a slash matches the name at any depth
    Case(b"*.log", b"a.log", F, True),
    Case(b"*.log", b"d/e/a.log", F, True),
    Case(b"*.log", b"a.log.txt", F, False),
    Case(b"a*", b"a", F, True),
    Case(b"?.py", b"a.py", F, True),
    Case(b"?.py", b"ab.py", F, False),
    Case(b"a?b", b"a\nb", F, True),
    Case(b"build", b"build", F, True),
    Case(b"build", b"src/build", D, True),
    Case(b"build", b"src/build/x.py", F, True),
    Case(b"*/x", b"a/x", F, True),
    Case(b"*/x", b"a/b/x", F, False),
    Case(b"a/*", b"a", D, False),
    Case(b"a/*", b"a/b", F, True),
    # a slash at the start or in the middle anchors the pattern to the .gitignore's directory
    Case(b"/only", b"only", F, True),
    Case(b"/only", b"d/only", F, False),
    Case(b"d/x", b"d/x", F, True),
    Case(b"d/x", b"e/d/x", F, False),
    Case(b"/a/b", b"a/b", F, True),
    # a trailing slash: directories only (and so everything below them)
    Case(b"build/", b"build", D, True),
    Case(b"build/", b"build", F, False),
    Case(b"build/", b"src/build", D, True),
    Case(b"build/", b"build/x/y.txt", F, True),
    Case(b"a/b/", b"a/b", D, True),
    Case(b"a/b/", b"a/b", F, False),
    Case(b"build//", b"build", D, False),
    # '**'
    Case(b"**/tmp", b"tmp", F, True),
    Case(b"**/tmp", b"a/b/tmp", F, True),
    Case(b"**/cache/", b"a/cache", D, True),
    Case(b"**/cache/", b"a/cache", F, False),
    Case(b"vendor/**", b"vendor", D, False),
    Case(b"vendor/**", b"vendor/x", F, True),
    Case(b"vendor/**", b"vendor/x/y", F, True),
    Case(b"a/**/b", b"a/b", F, True),
    Case(b"a/**/b", b"a/x/y/b", F, True),
    Case(b"a/**/b", b"ab", F, False),
    Case(b"a/**/**/b", b"a/b", F, True),
    Case(b"a/**/", b"a", D, False),
    Case(b"a/**/", b"a/x", F, False),
    Case(b"a/**/", b"a/x", D, True),
    Case(b"a/**/", b"a/x/y", F, True),
    Case(b"**", b"a/b", F, True),
    Case(b"**foo", b"d/xfoo", F, True),
    Case(b"a/**foo", b"a/x/foo", F, False),
    Case(b"a/**foo", b"a/xfoo", F, True),
    Case(b"a/b**c/d", b"a/bxc/d", F, True),
    Case(b"a/b**c/d", b"a/bx/c/d", F, False),
    Case(b"a/**\\/b", b"a/b", F, False),
    Case(b"a/**\\/b", b"a/x/b", F, True),
    # git compares the part before the first wildcard literally and starts wildmatch after it,
    # where a "**" counts as a whole component
    Case(b"a**/b", b"ab", F, True),
    Case(b"a**/b", b"ax/y/b", F, True),
    Case(b"x/a**\n!x/ab/", b"x/ab/c", F, True),
    Case(b"x/*a**\n!x/ab/", b"x/ab/c", F, False),
    # bracket expressions
    Case(b"[abc].txt", b"b.txt", F, True),
    Case(b"[abc].txt", b"d.txt", F, False),
    Case(b"[!a].txt", b"b.txt", F, True),
    Case(b"[!a].txt", b"a.txt", F, False),
    Case(b"[^a].txt", b"a.txt", F, False),
    Case(b"[a-c]x", b"bx", F, True),
    Case(b"[a-c]x", b"dx", F, False),
    Case(b"[]]x", b"]x", F, True),
    Case(b"[!]]x", b"ax", F, True),
    Case(b"[!]]x", b"]x", F, False),
    Case(b"[a-]x", b"-x", F, True),
    Case(b"[a-c-e]x", b"-x", F, True),
    Case(b"[a-c-e]x", b"dx", F, False),
    Case(b"[\\]]x", b"]x", F, True),
    Case(b"[a\\-c]x", b"bx", F, False),
    Case(b"[z-a]x", b"zx", F, True),
    Case(b"[z-a]x", b"mx", F, False),
    Case(b"[[:digit:]]x", b"1x", F, True),
    Case(b"[[:alpha:]][[:upper:]]", b"aB", F, True),
    Case(b"[[:space:]]x", b" x", F, True),
    Case(b"[[:space:]]x", b"\x0bx", F, False),
    Case(b"[[:cntrl:]]x", b"\x7fx", F, True),
    Case(b"[[:punct:]]x", b"-x", F, True),
    Case(b"[[:abc]x", b":x", F, True),
    Case(b"[[:foo:]]x", b"fx", F, False),
    Case(b"[ab", b"[ab", F, False),
    Case(b"a[/]b", b"a/b", F, False),
    Case(b"a/[!b]/c", b"a/x/c", F, True),
    Case(b"x/a[!b]c", b"x/a/c", F, False),
    Case(b"x/a?c", b"x/a/c", F, False),
    Case(b"x/a*c", b"x/a/c", F, False),
    # escapes, comments, negation
    Case(b"\\#hash", b"#hash", F, True),
    Case(b"#hash", b"#hash", F, False),
    Case(b"\\!bang", b"!bang", F, True),
    Case(b"\\*", b"*", F, True),
    Case(b"\\*", b"a", F, False),
    Case(b"foo\\", b"foo", F, False),
    Case(b"*.log\n!keep.log", b"keep.log", F, False),
    Case(b"*.log\n!keep.log", b"d/app.log", F, True),
    Case(b"dir/\n!dir/keep", b"dir/keep", F, True),
    Case(b"dir/*\n!dir/keep", b"dir/keep", F, False),
    Case(b"!", b"!", F, False),
    Case(b"/", b"x", F, False),
    Case(b"*\n!*/", b"d", D, False),
    Case(b"*\n!*/", b"d/f", F, True),
    # lines: trailing spaces, CR LF, BOM, bytes that are not UTF-8
    Case(b"trail  ", b"trail", F, True),
    Case(b"sp\\ ", b"sp ", F, True),
    Case(b"sp\\  ", b"sp ", F, True),
    Case(b"sp\\\\ ", b"sp\\", F, True),
    Case(b"a b", b"a b", F, True),
    Case(b"crlf\r\n", b"crlf", F, True),
    Case(b"\xef\xbb\xbfbom", b"bom", F, True),
    Case(b"caf\xe9*", b"caf\xe9.txt", F, True),
    Case(b"nul\0tail", b"nul", F, True),
]

# core.ignorecase: wildmatch lowers the name but not a bracket member or an escaped letter.
CASES_IGNORECASE = [
    Case(b"*.LOG", b"a.log", F, True),
    Case(b"FOO/", b"foo", D, True),
    Case(b"/Only", b"ONLY", F, True),
    Case(b"[a]x", b"Ax", F, True),
    Case(b"[A]x", b"Ax", F, False),
    Case(b"[!A]x", b"ax", F, True),
    Case(b"[A-Z]x", b"ax", F, True),
    Case(b"[[:upper:]]x", b"ax", F, True),
    Case(b"\\Ax", b"Ax", F, False),
    Case(b"\\ax", b"Ax", F, True),
]


# Nothing of the user's git configuration may leak into the oracle.
_GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
_GIT_ENV.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")
_GIT_ENV["XDG_CONFIG_HOME"] = _GIT_ENV["HOME"] = os.devnull


def ignored_by(gitignore: bytes, path: bytes, is_dir: bool, *, ignorecase: bool = False) -> bool:
    """git's verdict for one .gitignore: the first of the path's directories, then the path
    itself, whose last matching pattern is not a negation is ignored."""
    patterns = []
    for line in read_lines(gitignore):
        with contextlib.suppress(InvalidPattern):  # git keeps it; it never matches
            patterns.append(compile_pattern(line, ignorecase=ignorecase))
    parts = path.split(b"/")
    for depth in range(1, len(parts) + 1):
        rel = b"/".join(parts[:depth])
        entry_is_dir = depth < len(parts) or is_dir
        last = next((p for p in reversed(patterns) if p.matches(rel, entry_is_dir)), None)
        if last is not None and not last.negated:
            return True
    return False


def ask_git(
    root: Path, trees: list[tuple[bytes, list[tuple[bytes, bool]]]], *, ignorecase: bool = False
) -> list[list[bool]]:
    """What git ignores: each (.gitignore, [(path, is_dir)...]) in a directory of its own
    under a fresh repository, asked in one `git check-ignore` run."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=_GIT_ENV)
    asked = []
    for number, (gitignore, entries) in enumerate(trees):
        directory = os.fsencode(root / f"case{number}")
        os.makedirs(directory)
        with open(directory + b"/.gitignore", "wb") as f:
            f.write(gitignore)
        for path, is_dir in entries:
            full = directory + b"/" + path
            os.makedirs(full if is_dir else os.path.dirname(full), exist_ok=True)
            if not is_dir:
                with open(full, "wb"):
                    pass
        asked.append([b"case%d/%s" % (number, path) for path, _ in entries])
    casefold = f"core.ignorecase={str(ignorecase).lower()}"
    result = subprocess.run(
        ["git", "-c", casefold, "check-ignore", "--no-index", "--stdin", "-z"],
        cwd=root,
        input=b"".join(path + b"\0" for paths in asked for path in paths),
        capture_output=True,
        env=_GIT_ENV,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    ignored = set(result.stdout.split(b"\0"))
    return [[path in ignored for path in paths] for paths in asked]


@pytest.fixture(scope="module")
def git_says(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bool]]:
    base = tmp_path_factory.mktemp("gitignore-oracle")
    says = {}
    for name, cases, ignorecase in [
        ("exact", CASES, False),
        ("ignorecase", CASES_IGNORECASE, True),
    ]:
        trees = [(c.gitignore, [(c.path, c.is_dir)]) for c in cases]
        says[name] = [v[0] for v in ask_git(base / name, trees, ignorecase=ignorecase)]
    return says


@pytest.mark.parametrize("number", range(len(CASES)), ids=lambda n: repr(CASES[n])[5:-1])
def test_patterns_match_as_git_matches_them(git_says: dict[str, list[bool]], number: int) -> None:
    case = CASES[number]
    assert git_says["exact"][number] == case.ignored, "the table disagrees with git"
    assert ignored_by(case.gitignore, case.path, case.is_dir) == case.ignored


@pytest.mark.parametrize(
    "number", range(len(CASES_IGNORECASE)), ids=lambda n: repr(CASES_IGNORECASE[n])[5:-1]
)
def test_ignorecase_matches_as_git_matches(git_says: dict[str, list[bool]], number: int) -> None:
    case = CASES_IGNORECASE[number]
    assert git_says["ignorecase"][number] == case.ignored, "the table disagrees with git"
    assert ignored_by(case.gitignore, case.path, case.is_dir, ignorecase=True) == case.ignored


# A small tree every random .gitignore is asked about; names collide with the pieces below.
_FUZZ_DIRS = [b"a", b"b", b"ab", b"a/a", b"a/b", b"a/ab", b"b/a", b"ab/c.d", b"a/b/a"]
_FUZZ_FILES = [
    b"c",
    b"a.c",
    b"ba",
    b"*",
    b"a-b",
    b"a/c",
    b"a/a.c",
    b"a/b/c",
    b"a/b/ba",
    b"a/b/a/c",
    b"b/a/a.c",
    b"ab/c.d/b",
    b"ab/ca",
    b"a/ab/a.c",
]
_FUZZ_PIECES = [b"a", b"b", b"c", b".", b"*", b"**", b"?", b"/", b"[ab]", b"[!a]", b"[a-c]"]
_FUZZ_PIECES += [b"\\a", b"\\*", b"-", b"*/", b"**/", b"/**/"]


def _random_line(rng: random.Random) -> bytes:
    line = b"".join(rng.choice(_FUZZ_PIECES) for _ in range(rng.randint(1, 5)))
    return (b"!" if rng.random() < 0.25 else b"") + line + (b"/" if rng.random() < 0.2 else b"")


def test_random_patterns_match_as_git_matches_them(tmp_path: Path) -> None:
    rng = random.Random(0)
    entries = [(d, True) for d in _FUZZ_DIRS] + [(f, False) for f in _FUZZ_FILES]
    files = [b"\n".join(_random_line(rng) for _ in range(rng.randint(1, 3))) for _ in range(250)]
    verdicts = ask_git(tmp_path / "oracle", [(gitignore, entries) for gitignore in files])
    differ = [
        (gitignore, path, is_dir, git)
        for gitignore, answers in zip(files, verdicts)
        for (path, is_dir), git in zip(entries, answers)
        if ignored_by(gitignore, path, is_dir) != git
    ]
    assert differ == []
    hits = sum(sum(answers) for answers in verdicts)
    assert len(entries) * len(files) // 10 < hits  # the patterns do decide things


def test_read_lines_as_git_reads_them() -> None:
    text = b"\xef\xbb\xbfa\r\n# comment\n\n   \n b \\ \nx\\  \n\\#y\ntail"
    assert read_lines(text) == [b"a", b" b \\ ", b"x\\ ", b"\\#y", b"tail"]


def test_a_pattern_knows_its_parts() -> None:
    pattern = compile_pattern(b"!/a/b/")
    assert (pattern.negated, pattern.directory_only, pattern.basename_only) == (True, True, False)
    assert pattern.matches(b"a/b", True) and not pattern.matches(b"a/b", False)
    name = compile_pattern(b"*.py")
    assert name.basename_only and name.matches(b"d/e/f.py", False)


@pytest.mark.parametrize("line", [b"[ab", b"a/[[:foo:]]", b"x[\\", b"[[:alpha:]"])
def test_malformed_brackets_are_invalid(line: bytes) -> None:
    with pytest.raises(InvalidPattern):
        compile_pattern(line)


def test_many_double_stars_do_not_backtrack_forever() -> None:
    pattern = compile_pattern(b"a/" + b"**/" * 30 + b"z")
    assert not pattern.matches(b"a/" + b"x/" * 40 + b"y", False)
    assert pattern.matches(b"a/x/y/z", False)
