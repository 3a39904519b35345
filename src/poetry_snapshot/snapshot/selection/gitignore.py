"""gitignore patterns, matched exactly as git matches them, whichever dulwich Poetry brings.

Ported from git itself: gitignore(5) for the syntax, dir.c (`add_patterns_from_buffer`,
`parse_path_pattern`, `match_basename`, `match_pathname`) for how a line becomes a pattern,
and wildmatch.c for the glob language, translated to one regex per pattern. dulwich's own
translation differs from git in corner cases that changed across the releases Poetry 2.x
brings (before 1.2.15: `dir/**` and `dir/**/` name `dir`, `[!a]` matches '/', no
`[:space:]`; even later: `a**/b` does not match `ab` as git's does), so selection uses this.

The caller applies what a pattern means in context: the last matching pattern of a file
decides, a `!` pattern re-includes (`Pattern.negated`), and nothing below an ignored
directory can be re-included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GLOB_SPECIAL = frozenset(b"*?[\\")  # git's is_glob_special(): where the literal prefix ends
_NEVER = b"(?!)"
# The POSIX classes wildmatch knows, as git's own ctype defines them (ASCII only, no \v or
# \f in "space"); never '/'.
_CLASSES = {
    b"alnum": b"0-9A-Za-z",
    b"alpha": b"A-Za-z",
    b"blank": b"\\t ",
    b"cntrl": b"\\x00-\\x1f\\x7f",
    b"digit": b"0-9",
    b"graph": b"!-.0-~",
    b"lower": b"a-z",
    b"print": b" -.0-~",
    b"punct": b"!-.:-@\\[-`{-~",
    b"space": b"\\t\\n\\r ",
    b"upper": b"A-Z",
    b"xdigit": b"0-9A-Fa-f",
}


class InvalidPattern(ValueError):
    """A pattern wildmatch gives up on (an unclosed `[`, an unknown `[:class:]`).

    git keeps such a line and it never matches; only a caller's own rules should fail on it.
    """


@dataclass(frozen=True)
class Pattern:
    """One line of an ignore file, compiled."""

    line: bytes  # as read, after trailing spaces were trimmed
    negated: bool  # "!pattern": a match re-includes
    directory_only: bool  # "pattern/": only a directory matches
    basename_only: bool  # no '/' but a trailing one: decides the last component at any depth
    # Matched from the start of the path relative to the ignore file's directory, or of
    # its last component when basename_only; self-contained (scoped flags, no groups), so
    # that several can be joined into one alternation.
    regex: re.Pattern[bytes]

    def matches(self, rel: bytes, is_dir: bool) -> bool:
        """Whether this pattern decides `rel` ('/'-separated, no trailing slash)."""
        if self.directory_only and not is_dir:
            return False
        start = rel.rfind(b"/") + 1 if self.basename_only else 0
        return self.regex.match(rel, start) is not None


def read_lines(data: bytes) -> list[bytes]:
    """The pattern lines of an ignore file's content, as git reads them.

    A UTF-8 BOM is skipped, lines end at LF (one CR before it is dropped), a line starting
    with '#' is a comment, unescaped trailing spaces are trimmed, blank lines are dropped.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = []
    for line in data.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
        # git holds each line as a C string: a NUL byte ends it.
        line = _trim_trailing_spaces(line.partition(b"\0")[0])
        if line:
            lines.append(line)
    return lines


def _trim_trailing_spaces(line: bytes) -> bytes:
    kept = line.rstrip(b" ")
    if len(kept) == len(line):
        return line
    # An odd run of backslashes before the spaces escapes the first of them.
    backslashes = len(kept) - len(kept.rstrip(b"\\"))
    return line[: len(kept) + 1] if backslashes % 2 else kept


def compile_pattern(line: bytes, *, ignorecase: bool = False) -> Pattern:
    """Compile one pattern line (see read_lines); raises InvalidPattern."""
    body = line
    negated = body.startswith(b"!")
    if negated:
        body = body[1:]
    directory_only = body.endswith(b"/")
    if directory_only:
        body = body[:-1]  # one slash only, as git strips it
    basename_only = b"/" not in body
    if not basename_only and body.startswith(b"/"):
        body = body[1:]  # anchors the pattern to its directory, which it is anyway
    if not body:
        regex = _NEVER  # "!", "/": git keeps such lines, they never match
    elif basename_only:
        regex = _wildmatch(body, 0, ignorecase=ignorecase)
    else:
        # git compares the part before the first wildcard literally and hands only the rest
        # to wildmatch, for which it then starts the pattern: `a**/b` matches `ab` and `ax/y/b`.
        literal = next((i for i, c in enumerate(body) if c in _GLOB_SPECIAL), len(body))
        regex = re.escape(body[:literal])
        regex += _wildmatch(body, literal, ignorecase=ignorecase, pathname=True)
    flags = b"si" if ignorecase else b"s"  # DOTALL: names may hold a newline
    compiled = re.compile(b"(?" + flags + b":" + regex + b")\\Z")
    return Pattern(line, negated, directory_only, basename_only, compiled)


def _wildmatch(pattern: bytes, start: int, *, ignorecase: bool, pathname: bool = False) -> bytes:
    """The regex for `pattern[start:]` in git's wildmatch(), WM_PATHNAME when `pathname`.

    Without WM_PATHNAME the text is a single name, so '*' never meets a '/' either.
    """
    out: list[bytes] = []
    n = len(pattern)
    i = start
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            j = i
            while j < n and pattern[j] == 0x2A:
                j += 1
            # "**" spans directories only as a whole component: after '/' or at the start,
            # before '/' (even an escaped one) or at the end.
            whole = (
                pathname
                and j - i >= 2
                and (i == start or pattern[i - 1] == 0x2F)
                and (j == n or pattern[j] == 0x2F or pattern[j : j + 2] == b"\\/")
            )
            if not whole:
                out.append(b"[^/]*")
            elif j < n and pattern[j] == 0x2F:
                j += 1  # "**/": zero or more directories
                if not out or out[-1] != b"(?:.*/)?":  # "**/**/" is "**/"; avoids backtracking
                    out.append(b"(?:.*/)?")
            else:
                out.append(b".*")
            i = j
        elif c == 0x3F:  # '?'
            out.append(b"[^/]")
            i += 1
        elif c == 0x5B:  # '['
            i, piece = _bracket(pattern, i + 1, ignorecase)
            out.append(piece)
        elif c == 0x5C:  # '\\'
            if i + 1 == n:
                return _NEVER  # a trailing backslash escapes nothing and matches nothing
            escaped = pattern[i + 1]
            if ignorecase and 0x41 <= escaped <= 0x5A:
                # wildmatch lowers the text but not an escaped letter: "\A" never matches.
                return _NEVER
            out.append(re.escape(pattern[i + 1 : i + 2]))
            i += 2
        else:
            out.append(re.escape(pattern[i : i + 1]))
            i += 1
    return b"".join(out)


def _bracket(pattern: bytes, i: int, ignorecase: bool) -> tuple[int, bytes]:
    """The class opened just before `pattern[i]`: (index past its ']', regex)."""
    n = len(pattern)
    negated = i < n and pattern[i] in b"!^"
    if negated:
        i += 1
    singles: list[int] = []
    ranges: list[tuple[int, int]] = []
    classes: list[bytes] = []
    prev: int | None = None  # what a following '-' makes a range from
    first = True
    while True:
        if i >= n:
            raise InvalidPattern("unclosed [")
        c = pattern[i]
        if c == 0x5D and not first:  # ']' closes, except as the first member
            break
        first = False
        if c == 0x5C:  # '\\' escapes the next member
            i += 1
            if i >= n:
                raise InvalidPattern("unclosed [")
            prev = pattern[i]
            singles.append(prev)
        elif c == 0x2D and prev is not None and i + 1 < n and pattern[i + 1] != 0x5D:
            i += 1
            if pattern[i] == 0x5C:
                i += 1
                if i >= n:
                    raise InvalidPattern("unclosed [")
            # wildmatch already took the low end as a member: "[z-a]" still matches "z".
            ranges.append((prev, pattern[i]))
            prev = None
        elif c == 0x5B and pattern[i + 1 : i + 2] == b":":
            end = pattern.find(b"]", i + 2)
            if end < 0:
                raise InvalidPattern("unclosed [")
            if end == i + 2 or pattern[end - 1] != 0x3A:
                prev = c  # no ":]": the '[' is a plain member and the scan goes on after it
                singles.append(c)
            else:
                name = pattern[i + 2 : end - 1]
                if name not in _CLASSES:
                    raise InvalidPattern(f"unknown class [:{name.decode(errors='replace')}:]")
                classes.append(_CLASSES[name])
                prev = None
                i = end
        else:
            prev = c
            singles.append(c)
        i += 1
    if ignorecase:
        # wildmatch lowers the text but not a member: an upper-case member never matches
        # (ranges compare both cases, as the regex flag does).
        singles = [c for c in singles if not 0x41 <= c <= 0x5A]
    body = b"".join(_member(c, c) for c in singles)
    body += b"".join(_member(low, high) for low, high in ranges if low <= high)
    body += b"".join(classes)
    if negated:
        return i + 1, b"[^/" + body + b"]"  # never '/', not even negated
    return i + 1, b"[" + body + b"]" if body else _NEVER


def _member(low: int, high: int) -> bytes:
    """A class member or range, with '/' cut out: wildmatch's classes never match it."""
    pieces = []
    for a, b in ((low, min(high, 0x2E)), (max(low, 0x30), high)):
        if a <= b:
            pieces.append(b"\\x%02x" % a if a == b else b"\\x%02x-\\x%02x" % (a, b))
    return b"".join(pieces)
