"""The names of what a snapshot holds beside the project's files, all under `.snapshot/`.

    .snapshot/manifest.json      the manifest, written once before publication (manifest.py)
    .snapshot/git.diff           the diff against HEAD, untracked files included (git_facts.py)
    .snapshot/git/submodules/    one diff per changed submodule
    .snapshot/runs/<run id>.json one record per run of a command (run_record.py)
    .snapshot/published          names the store and the id (what makes a directory a snapshot
                                 of this store); written just before publication, never
                                 touched again: its mtime is when it was published (store.py)
    .snapshot/in-use.lock        held shared by every run, exclusively to replace (holds.py)
    .snapshot/holders/           one locked file per run that holds the snapshot

A project file or directory named `.snapshot` at the root is never selected: it would collide.
"""

from __future__ import annotations

METADATA_DIR = ".snapshot"
MANIFEST_NAME = "manifest.json"
DIFF_NAME = "git.diff"
SUBMODULE_DIFFS = "git/submodules"
RUNS_DIR = "runs"
PUBLISHED = "published"
IN_USE = "in-use.lock"
HOLDERS = "holders"
