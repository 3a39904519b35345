"""A real single-node Slurm cluster for the tests, started and stopped by the test process.

Everything the cluster needs lives in one private directory: its own munge key and munged,
slurm.conf, state and spool directories, logs and pid files. `slurmctld` and `slurmd` listen
on free TCP ports picked at start, so clusters of several pytest-xdist workers (or several
test runs) can live side by side on one machine without knowing about each other; nothing
reads or writes /etc/slurm, /etc/munge or /run/munge.

    reason = availability()          # None, or why there can be no cluster here
    with SlurmCluster(tmp_dir) as cluster:
        job = cluster.sbatch("--wrap", "echo hi", cwd=tmp_dir)
        cluster.wait(job)            # the job's `scontrol show job` records, once finished
        subprocess.run(["squeue"], env=cluster.env)   # SLURM_CONF points at the cluster

On exit the cluster cancels what is still queued, stops the three daemons it started by
pid (SIGTERM, a wait, then SIGKILL) and makes sure nothing that ran under them is left.

`python tests/slurm_cluster.py install` installs Debian's `slurm-wlm` and `munge` (CI runs
it); `check` says whether a cluster can run here; `up` starts one and prints its SLURM_CONF.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from types import TracebackType

# What `install` puts on the machine, and what a cluster needs from it.
PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo")
# A job in one of these states is over (`scontrol show job` JobState, `sacct` State).
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
# Environment variables of an outer Slurm job or of a user's defaults change what the client
# commands do (SQUEUE_FORMAT, SBATCH_PARTITION, SLURM_JOB_ID...): the cluster never passes them.
_FOREIGN_PREFIXES = (
    "SLURM_",
    "SBATCH_",
    "SALLOC_",
    "SRUN_",
    "SQUEUE_",
    "SACCT_",
    "SINFO_",
    "SCONTROL_",
    "SCANCEL_",
    "MUNGE_",
)
_MARKER = "POETRY_SNAPSHOT_SLURM_CLUSTER"  # set on the daemons, inherited by every job step
_PR_SET_PDEATHSIG = 1
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


def under_ci() -> bool:
    """True where CI=true (or any value but empty, 0, false, no): Slurm must work there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_binaries() -> list[str]:
    return [
        name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=_search_path()) is None
    ]


def availability() -> str | None:
    """None when a cluster can be started here, else the reason why not (to skip with)."""
    if not sys.platform.startswith("linux"):
        return f"a Slurm test cluster needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "a Slurm test cluster needs root (slurmd runs jobs as the submitting user)"
    missing = missing_binaries()
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} not found); "
            "`python tests/slurm_cluster.py install` installs it"
        )
    return None


def install() -> None:
    """Install Debian's slurm-wlm and munge unless their commands are already there.

    Idempotent and quiet: prints nothing on success, raises with apt's output on failure.
    While apt runs, a policy-rc.d (if the machine has none) keeps the packages' init scripts
    from starting a system munged, slurmctld or slurmd that nobody would stop.
    """
    if not missing_binaries():
        return
    if os.geteuid() != 0:
        raise RuntimeError("installing Slurm needs root (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ]
    policy_created = False
    if not _POLICY_RC.exists():
        _POLICY_RC.write_text(
            "#!/bin/sh\n# written by tests/slurm_cluster.py during apt-get\nexit 101\n"
        )
        _POLICY_RC.chmod(0o755)
        policy_created = True
    try:
        for command in steps:
            result = subprocess.run(
                command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip()
                raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{output}")
    finally:
        if policy_created:
            _POLICY_RC.unlink()
    still_missing = missing_binaries()
    if still_missing:
        raise RuntimeError(
            f"installed {' '.join(PACKAGES)} but {', '.join(still_missing)} is missing"
        )


def client_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without the variables that steer Slurm's commands."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(_FOREIGN_PREFIXES)}


def parse_scontrol(text: str) -> list[dict[str, str]]:
    """Records of `scontrol -o show job|node|partition`: one dict a line.

    Fields are `Key=Value` separated by single spaces; a value may itself hold spaces (a
    Reason, a Command with spaces), so a field starts only where ` Word=` starts one.
    """
    records: list[dict[str, str]] = []
    field = re.compile(r"(?:^| )([A-Za-z][A-Za-z0-9_:/]*)=")
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        starts = list(field.finditer(line))
        record: dict[str, str] = {}
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(line)
            record[match.group(1)] = line[match.end() : end]
        records.append(record)
    return records


class SlurmError(RuntimeError):
    """The cluster failed to start or a Slurm command failed; the message says how."""


class SlurmCluster:
    """A single-node Slurm cluster owned by this process; a context manager.

    `root` is a directory this cluster may fill (it is created if missing, and left in
    place afterwards for the logs). `cpus` overrides the CPU count `slurmd -C` reports (at
    least 2 concurrent single-CPU jobs on this 2-core machine either way).
    """

    partition = "debug"

    def __init__(
        self,
        root: Path | str,
        *,
        cpus: int | None = None,
        startup_timeout: float = 30.0,
        kill_wait: int = 2,
        wait_for_scheduler: bool = True,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.startup_timeout = startup_timeout
        self.kill_wait = kill_wait
        self.wait_for_scheduler = wait_for_scheduler
        self.settings = dict(settings or {})
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.jobcomp = self.root / "log" / "jobcomp.txt"
        self.node_name = ""
        self.cluster_name = ""
        self.ctld_port = 0
        self.slurmd_port = 0
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._marker = ""

    # -- what a client needs -----------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment for Slurm client subprocesses: os.environ + SLURM_CONF."""
        return self.environ()

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) cleaned of Slurm variables, with SLURM_CONF set."""
        env = client_environ(base)
        env["SLURM_CONF"] = str(self.conf)
        env[_MARKER] = self._marker  # jobs inherit it: see _sweep
        return env

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 60.0,
        cwd: Path | str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (`squeue`, `sacct -c`...) against this cluster."""
        result = subprocess.run(
            list(command),
            env=self.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise SlurmError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def sbatch(self, *args: str, cwd: Path | str | None = None) -> str:
        """Submit with `sbatch --parsable ARGS`; the job id (of an array: the array's id)."""
        out = self.run("sbatch", "--parsable", *args, cwd=cwd).stdout.strip()
        return out.split(";")[0]

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol -o show job JOB_ID` parsed: one record a job (a task of an array)."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if result.returncode != 0:
            raise SlurmError(f"scontrol show job {job_id}: {result.stdout}{result.stderr}".strip())
        return parse_scontrol(result.stdout)

    def wait(
        self, job_id: str, *, timeout: float = 60.0, states: Iterable[str] = TERMINAL_STATES
    ) -> list[dict[str, str]]:
        """Poll until every record of JOB_ID (all tasks of an array) is in `states`."""
        wanted = frozenset(states)
        deadline = time.monotonic() + timeout
        while True:
            records = self.jobs(job_id)
            # A pending array has one record for its not yet started tasks ("ArrayTaskId=3-7%2").
            if records and all(r.get("JobState") in wanted for r in records):
                return records
            if time.monotonic() > deadline:
                summary = ", ".join(f"{r.get('JobId')}={r.get('JobState')}" for r in records)
                raise SlurmError(
                    f"job {job_id} not in {sorted(wanted)} after {timeout:.0f} s: {summary}\n"
                    + self.log_tails()
                )
            time.sleep(0.05)

    def sacct(
        self, job_id: str, fields: Sequence[str] = ("JobID", "JobName", "State", "ExitCode")
    ) -> list[dict[str, str]]:
        """The job completion records (`sacct -c`, jobcomp/filetxt) of JOB_ID."""
        out = self.run("sacct", "-c", "-j", job_id, "-n", "-P", "-o", ",".join(fields)).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of each daemon's log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Write the configuration, start munged, slurmctld and slurmd, wait for an idle node.

        A port taken between picking and binding makes a daemon exit: then all is stopped
        and started again on other ports, up to `attempts` times.
        """
        reason = availability()
        if reason is not None:
            raise SlurmError(reason)
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except SlurmError as error:
                self.stop()
                if attempt == attempts or "already in use" not in str(error):
                    raise
            else:
                self.startup_seconds = time.monotonic() - began
                return

    def stop(self) -> None:
        """Cancel every job, stop the daemons this cluster started (by pid), sweep the rest."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self._cancel_all()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc)
        if self._marker:
            _sweep(self._marker)

    # -- internals ---------------------------------------------------------------------------

    def _start_once(self) -> None:
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self._marker = f"{os.getpid()}:{self.root}"
        self.ctld_port, self.slurmd_port = _free_ports(2)
        node_line = self._node_line()
        self.conf.write_text(self._config(node_line))
        (self.root / "plugstack.conf").write_text("")
        self._start_munged()
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        # `scontrol ping` answers at once; sinfo would retry a closed port for 9 s.
        self._wait_for(f"slurmctld to answer on port {self.ctld_port}", self._ctld_up)
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait_for(f"node {self.node_name} to be idle", self._node_idle)
        if self.wait_for_scheduler:
            self._wait_for("the first scheduling pass", self._scheduler_ran)

    def _node_line(self) -> str:
        """`slurmd -C`'s NodeName line (the hardware slurmd will report), our address on it."""
        out = subprocess.run(
            ["slurmd", "-C"], env=client_environ(), capture_output=True, text=True, check=True
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("NodeName="))
        fields = dict(item.split("=", 1) for item in line.split())
        self.node_name = fields["NodeName"]
        self.cluster_name = _cluster_name(self.node_name)
        if self.cpus is not None:  # a node as big as asked; slurmd is told to believe slurm.conf
            for key in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
                fields.pop(key, None)
            fields.update(
                CPUs=str(self.cpus), Sockets="1", CoresPerSocket=str(self.cpus), ThreadsPerCore="1"
            )
        fields.update(NodeAddr="127.0.0.1", NodeHostname=self.node_name, State="UNKNOWN")
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def _config(self, node_line: str) -> str:
        r = self.root
        settings: dict[str, object] = {
            "ClusterName": self.cluster_name,
            "SlurmctldHost": f"{self.node_name}(127.0.0.1)",
            "SlurmctldPort": self.ctld_port,
            "SlurmdPort": self.slurmd_port,
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            "StateSaveLocation": r / "state",
            "SlurmdSpoolDir": r / "spool",
            "SlurmctldPidFile": r / "run" / "slurmctld.pid",
            "SlurmdPidFile": r / "run" / "slurmd.pid",
            "SlurmctldLogFile": r / "log" / "slurmctld.log",
            "SlurmdLogFile": r / "log" / "slurmd.log",
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
            "PlugStackConfig": r / "plugstack.conf",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "SchedulerType": "sched/backfill",
            "SchedulerParameters": "batch_sched_delay=0",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp,
            "MinJobAge": 3600,
            "KillWait": self.kill_wait,
            "ReturnToService": 2,
            "MpiDefault": "none",
            "MailProg": "/bin/true",
        }
        if self.cpus is not None:
            settings["SlurmdParameters"] = "config_overrides"
        settings.update(self.settings)
        lines = [f"# written by {__name__} for a test cluster in {r}"]
        lines += [f"{k}={v}" for k, v in settings.items()]
        lines.append(node_line)
        lines.append(
            f"PartitionName={self.partition} Nodes={self.node_name} Default=YES "
            "MaxTime=INFINITE State=UP"
        )
        return "\n".join(lines) + "\n"

    def _start_munged(self) -> None:
        """A munged of our own, on a socket in our directory, with a key of our own."""
        munge = self.root / "munge"
        key = munge / "munge.key"
        if not key.exists():
            subprocess.run(
                ["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True
            )
        # --force: munged wants every directory above its socket world-searchable, which a
        # private temp dir is not; all of the cluster's clients run as root, who can reach it.
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
                "--num-threads=2",
            ],
        )
        self._wait_for("munged to answer", self._munge_answers)

    def _munge_answers(self) -> bool:
        if not self.munge_socket.exists():
            return False
        result = subprocess.run(
            ["munge", "--no-input", f"--socket={self.munge_socket}"],
            capture_output=True,
            timeout=10,
        )
        return result.returncode == 0

    def _ctld_up(self) -> bool:
        result = self.run("scontrol", "ping", check=False, timeout=20)
        return result.returncode == 0 and " is UP" in result.stdout

    def _scheduler_ran(self) -> bool:
        """Whether slurmctld's main scheduler has made a pass (sdiag's "Total cycles").

        Until then, Slurm 22.05 holds batch jobs for its built-in batch_sched_delay of 3 s:
        it reads SchedulerParameters=batch_sched_delay=0 only in its first pass, which comes
        3 s after slurmctld started. Waiting here makes every job, the first one included,
        start within the scheduler's 1 s tick. A format this does not know counts as ran.
        """
        out = self.run("sdiag", check=False, timeout=20).stdout
        match = re.search(r"Main schedule statistics.*?Total cycles:\s*(\d+)", out, re.S)
        return match is None or int(match.group(1)) > 0

    def _node_idle(self) -> bool:
        result = self.run(
            "sinfo",
            "--noheader",
            "--Node",
            "--nodes",
            self.node_name,
            "--format",
            "%T",
            check=False,
            timeout=20,
        )
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _spawn(self, name: str, command: list[str]) -> None:
        env = client_environ()
        env["SLURM_CONF"] = str(self.conf)
        env[_MARKER] = self._marker
        with open(self.root / "log" / f"{name}.out", "ab") as out:
            self._procs[name] = subprocess.Popen(
                command,
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal goes to pytest, not to them
                preexec_fn=_die_with_parent(),
            )

    def _wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            for name, proc in self._procs.items():
                code = proc.poll()
                if code is not None:
                    raise SlurmError(
                        f"{name} exited with {code} while waiting for {what}\n" + self._diagnosis()
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise SlurmError(
                    f"timed out after {self.startup_timeout:.0f} s waiting for {what}\n"
                    + self._diagnosis()
                )
            time.sleep(0.05)

    def _diagnosis(self) -> str:
        parts = [self.log_tails()]
        for path in sorted((self.root / "log").glob("*.out")):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path}\n{text[-3000:]}")
        return "\n".join(parts)

    def _cancel_all(self) -> None:
        """Cancel every job of this cluster and give them KillWait to end, so that no job
        step outlives slurmd (slurmstepd runs on its own once a job started)."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.run("scancel", "--quiet", f"--partition={self.partition}", check=False, timeout=20)
            deadline = time.monotonic() + self.kill_wait + 10
            while time.monotonic() < deadline:
                out = self.run(
                    "squeue",
                    "--noheader",
                    "--states=RUNNING,COMPLETING,CONFIGURING",
                    "-o",
                    "%i",
                    check=False,
                    timeout=20,
                ).stdout
                if not out.strip():
                    break
                time.sleep(0.1)


def _search_path() -> str:
    # Debian puts the daemons in /usr/sbin, which a non-login root shell may lack on its PATH.
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    extra = [d for d in ("/usr/sbin", "/sbin", "/usr/bin") if d not in path]
    return os.pathsep.join(path + extra)


def _cluster_name(node_name: str) -> str:
    """A ClusterName from the host's name: lower case letters, digits and '-', 40 at most."""
    name = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-") or "node"
    return f"test-{name}"[:40]


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn: the daemon gets SIGTERM when the thread that started it ends, so a
    killed test process (a CI timeout, kill -9) leaves no cluster behind. libc is loaded
    here, in the parent: the child between fork and exec only calls prctl."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps the process."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _sweep(marker: str) -> None:
    """SIGKILL what still carries this cluster's marker in its environment: job steps
    (slurmstepd and the job's processes, which slurmd does not take down with it)."""
    needle = f"{_MARKER}={marker}".encode()
    me = os.getpid()
    for _ in range(3):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "install":
        install()
        return 0
    if command == "check":
        reason = availability()
        print(reason or "a Slurm test cluster can run here")
        return 0 if reason is None else 1
    if command == "up":  # for poking at a cluster by hand: `up DIR`, Ctrl-C to stop it
        root = Path(argv[1] if len(argv) > 1 else "/tmp/slurm-test-cluster")
        with SlurmCluster(root) as cluster:
            print(f"export SLURM_CONF={cluster.conf}  # up in {cluster.startup_seconds:.2f} s")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0
    print("usage: slurm_cluster.py install | check | up [DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
