"""The Slurm test cluster (tests/slurm_cluster.py) against a real slurmctld and slurmd.

The `slurm` fixture is session-scoped: one cluster per pytest process, so one per xdist
worker that runs a test using it (each cluster is private: its own ports, munged, state),
started in about 3 s. Marking such tests `@pytest.mark.xdist_group("slurm")` and running
with `--dist loadgroup` puts them all on one worker, hence one cluster; under the default
`--dist load` the mark does nothing and each worker that needs a cluster starts its own.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.slurm_cluster import MARKER
from tests.slurm_cluster import SlurmCluster
from tests.slurm_cluster import availability
from tests.slurm_cluster import marked_processes
from tests.slurm_cluster import parse_records
from tests.slurm_cluster import under_ci

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def require_slurm() -> None:
    """Skip when there can be no cluster here; under CI=true, fail instead."""
    reason = availability()
    if reason is None:
        return
    if under_ci():
        pytest.fail(f"CI=true, and no Slurm cluster can run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running single-node Slurm cluster; pass `slurm.env` to Slurm subprocesses."""
    require_slurm()
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.05)
    return path.read_text()


def test_a_job_completes_and_writes_its_output(slurm: SlurmCluster, tmp_path: Path) -> None:
    # Submitted as the code under test would: a plain subprocess with the cluster's env.
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--wrap", "echo hi"],
        env=slurm.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip()
    [record] = slurm.wait(job)
    assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0")
    assert (tmp_path / f"slurm-{job}.out").read_text() == "hi\n"
    assert slurm.sacct(job) == [
        {"JobID": job, "JobName": "wrap", "State": "COMPLETED", "ExitCode": "0:0"}
    ]


def test_an_exit_code_is_reported(slurm: SlurmCluster, tmp_path: Path) -> None:
    job = slurm.sbatch("--job-name=exit-3", "--wrap", "exit 3", cwd=tmp_path)
    [record] = slurm.wait(job)
    assert (record["JobState"], record["Reason"], record["ExitCode"]) == (
        "FAILED",
        "NonZeroExitCode",
        "3:0",
    )
    # (sacct -c misreads a job whose name has a space: its State comes back empty.)
    assert slurm.sacct(job) == [
        {"JobID": job, "JobName": "exit-3", "State": "FAILED", "ExitCode": "3:0"}
    ]


@pytest.mark.parametrize("tasks", ["0-7", "0-7%2"])
def test_all_tasks_of_an_array_finish(slurm: SlurmCluster, tmp_path: Path, tasks: str) -> None:
    script = "echo task $SLURM_ARRAY_TASK_ID; test $SLURM_ARRAY_TASK_ID -ne 5"
    out = f"--output={tmp_path}/task-%a.out"
    array = slurm.sbatch(f"--array={tasks}", out, "--wrap", script, cwd=tmp_path)
    records = slurm.wait(array, timeout=120)
    by_task = {int(r["ArrayTaskId"]): (r["JobState"], r["ExitCode"]) for r in records}
    expected = {i: ("COMPLETED", "0:0") for i in range(8)}
    expected[5] = ("FAILED", "1:0")
    assert by_task == expected
    assert {r["ArrayJobId"] for r in records} == {array}
    for i in range(8):
        assert (tmp_path / f"task-{i}.out").read_text() == f"task {i}\n"
    # sacct -c knows the tasks by their own job ids only; the jobcomp log names the task.
    done = {r["ArrayTaskId"]: r for r in slurm.completions() if r.get("ArrayJobId") == array}
    assert {int(t): (r["JobState"], r["ExitCode"]) for t, r in done.items()} == expected
    task5 = done["5"]["JobId"]
    assert slurm.sacct(task5, fields=("JobID", "State", "ExitCode")) == [
        {"JobID": task5, "State": "FAILED", "ExitCode": "1:0"}
    ]


def test_two_jobs_run_at_once(slurm: SlurmCluster, tmp_path: Path) -> None:
    # Each job waits for the other to have started: both complete only if they run together.
    script = (
        "#!/bin/sh\n"
        "touch started-$1\n"
        "for i in $(seq 200); do [ -e started-$2 ] && exit 0; sleep 0.1; done\n"
        "exit 1\n"
    )
    (tmp_path / "pair.sh").write_text(script)
    a = slurm.sbatch("pair.sh", "a", "b", cwd=tmp_path)
    b = slurm.sbatch("pair.sh", "b", "a", cwd=tmp_path)
    assert [r["JobState"] for r in slurm.wait(a) + slurm.wait(b)] == ["COMPLETED", "COMPLETED"]


@pytest.mark.parametrize("hold", ["--hold", "--begin=now+1hour"])
def test_a_pending_job_is_cancelled(slurm: SlurmCluster, tmp_path: Path, hold: str) -> None:
    job = slurm.sbatch(hold, "--wrap", "echo never", cwd=tmp_path)
    [record] = slurm.jobs(job)
    assert record["JobState"] == "PENDING"
    assert record["Reason"] == ("JobHeldUser" if hold == "--hold" else "BeginTime")
    slurm.run("scancel", job)
    [record] = slurm.wait(job, timeout=10)
    assert record["JobState"] == "CANCELLED"
    assert [c["State"] for c in slurm.sacct(job)] == ["CANCELLED"]
    assert not (tmp_path / f"slurm-{job}.out").exists()


def test_scancel_sends_sigterm_to_a_running_job(slurm: SlurmCluster, tmp_path: Path) -> None:
    # Slurm signals every process of the job, children first (proctrack/linuxproc): were
    # `sleep 300 & wait` the script's end, a busy machine could let the shell see its child
    # die and exit before its own SIGTERM arrives. So the shell waits in a loop.
    script = (
        "#!/bin/bash\n"
        "trap 'echo TERM > got-term; exit 0' TERM\n"
        "echo $$ > running\n"
        "while :; do sleep 1 & wait $!; done\n"
    )
    (tmp_path / "trap.sh").write_text(script)
    job = slurm.sbatch("trap.sh", cwd=tmp_path)
    slurm.wait(job, states={"RUNNING"})
    wait_for_file(tmp_path / "running")  # the trap is set
    slurm.run("scancel", job)
    [record] = slurm.wait(job, timeout=30)
    assert record["JobState"] == "CANCELLED"
    assert wait_for_file(tmp_path / "got-term") == "TERM\n"


def test_the_environment_names_the_cluster(slurm: SlurmCluster) -> None:
    assert slurm.env["SLURM_CONF"] == str(slurm.conf)
    ping = subprocess.run(["scontrol", "ping"], env=slurm.env, capture_output=True, text=True)
    assert ping.returncode == 0 and " is UP" in ping.stdout, ping.stdout + ping.stderr
    sinfo = subprocess.run(
        ["sinfo", "--noheader", "--format=%P %D %c"],
        env=slurm.env,
        capture_output=True,
        text=True,
        check=True,
    )
    partition, nodes, cpus = sinfo.stdout.split()
    assert (partition, nodes) == ("debug*", "1")
    assert int(cpus) >= 2


def test_stopping_leaves_nothing_running(tmp_path_factory: pytest.TempPathFactory) -> None:
    require_slurm()
    root = tmp_path_factory.mktemp("slurm-stop")
    # No waiting for the first scheduling pass: the job starts at most 3 s later anyway.
    with SlurmCluster(root, wait_for_scheduler=False) as cluster:
        pids = cluster.pids
        assert sorted(pids) == ["munged", "slurmctld", "slurmd"]
        job = cluster.sbatch("--wrap", "sleep 300", cwd=root)
        cluster.wait(job, states={"RUNNING"})
        marker = cluster.env[MARKER]
        assert marked_processes(marker)  # slurmstepd and the job's shell and sleep
    assert cluster.pids == {}
    for name, pid in pids.items():
        assert not os.path.exists(f"/proc/{pid}"), f"{name} ({pid}) still runs"
    assert marked_processes(marker) == []


def test_records_keep_values_with_spaces() -> None:
    line = "JobId=7 JobName=two words Reason=None ExitCode=3:0 AllocNode:Sid=localhost:4098 Power="
    assert parse_records(line + "\n\n") == [
        {
            "JobId": "7",
            "JobName": "two words",
            "Reason": "None",
            "ExitCode": "3:0",
            "AllocNode:Sid": "localhost:4098",
            "Power": "",
        }
    ]


@pytest.mark.parametrize(
    ("value", "ci"), [("true", True), ("1", True), ("", False), ("false", False), ("0", False)]
)
def test_ci_means_slurm_is_required(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert under_ci() is ci
