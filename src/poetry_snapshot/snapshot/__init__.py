"""Taking snapshots and running commands from them: `poetry snapshot -- CMD`.

Decide first (`take.plan`: verify, select the files, find the editables), act second
(`take.take`: copy into the store, write the manifest, publish; `take.run`: run and record).
Builds on `check` for the verification.
"""
