"""Checking an environment against its lock: `poetry snapshot --check [--deep]`.

The lowest domain: it reads the lock (Poetry's Locker and Transaction), finds the env without
creating it, compares, and renders the verdict. `snapshot` and `export` build on it; it
imports from neither.
"""
