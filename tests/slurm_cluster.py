"""A real single-node Slurm cluster for the tests, started and stopped by the test process.

Everything a cluster needs lives in one private directory: its own munge key and munged,
slurm.conf, state and spool directories, logs and pid files. slurmctld and slurmd listen on
free TCP ports picked at start, so the clusters of several pytest-xdist workers (or of
several test runs) live side by side on one machine without knowing of each other; nothing
reads or writes /etc/slurm, /etc/munge or /run/munge.

    reason = availability()          # None, or why there can be no cluster here
    with SlurmCluster(tmp_dir) as cluster:
        job = cluster.sbatch("--wrap", "echo hi", cwd=tmp_dir)
        cluster.wait(job)            # the job's `scontrol show job` records, once it ended
        subprocess.run(["squeue"], env=cluster.env)   # SLURM_CONF points at the cluster

On exit the cluster cancels every job, stops the three daemons it started by pid (SIGTERM,
a wait, then SIGKILL) and kills what still runs under them (job steps outlive slurmd).

`python tests/slurm_cluster.py install` installs Debian's slurm-wlm and munge (for CI);
`check` says whether a cluster can run here; `up DIR` starts one until Ctrl-C.
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

# What `install` puts on the machine, and the commands a cluster needs from it.
PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo", "sdiag", "munge")
# A job in one of these states has ended (`scontrol show job` JobState, `sacct` State).
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
# Variables of an outer Slurm job or of a user's defaults change what the client commands do
# (SQUEUE_FORMAT, SBATCH_PARTITION, SLURM_JOB_ID...): the cluster passes none of them on.
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
)
# Set on the daemons and on every client: slurmstepd and the jobs inherit it (see _sweep).
MARKER = "POETRY_SNAPSHOT_SLURM_CLUSTER"
_PR_SET_PDEATHSIG = 1
_POLICY_RC = Path("/usr/sbin/policy-rc.d")
# Unix sockets (munge's, slurmstepd's in the spool dir) take paths of at most 107 bytes.
_MAX_ROOT_LENGTH = 80


def under_ci() -> bool:
    """True where CI is set to true (any value but empty, 0, false, no): Slurm must work."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def binary(name: str) -> str:
    """The full path of a Slurm or munge command (Debian puts the daemons in /usr/sbin,
    which a non-login root shell may not have on its PATH); the bare name if not found."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    path += [d for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin") if d not in path]
    return shutil.which(name, path=os.pathsep.join(path)) or name


def missing_binaries() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if not os.path.isabs(binary(name))]


def availability() -> str | None:
    """None when a cluster can be started here, else the reason why not (to skip with)."""
    if not sys.platform.startswith("linux"):
        return f"a Slurm test cluster needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "a Slurm test cluster needs root (slurmd launches jobs as root)"
    missing = missing_binaries()
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} not found); "
            "`python tests/slurm_cluster.py install` installs it"
        )
    return None


def install() -> None:
    """Install Debian's slurm-wlm and munge, unless their commands are all there already.

    Idempotent and quiet: prints nothing, raises with apt's output when it fails. While apt
    runs, a policy-rc.d (only if the machine has none) keeps the packages' init scripts from
    starting a system munged, slurmctld or slurmd that nobody would stop.
    """
    if not missing_binaries():
        return
    if os.geteuid() != 0:
        raise SlurmError("installing Slurm needs root (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    commands = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ]
    wrote_policy = False
    if not _POLICY_RC.exists() and not _POLICY_RC.is_symlink():
        _POLICY_RC.write_text(
            "#!/bin/sh\n# tests/slurm_cluster.py: no services during apt\nexit 101\n"
        )
        _POLICY_RC.chmod(0o755)
        wrote_policy = True
    try:
        for command in commands:
            result = subprocess.run(
                command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip()
                raise SlurmError(f"{' '.join(command)} exited {result.returncode}:\n{output}")
    finally:
        if wrote_policy:
            _POLICY_RC.unlink()
    missing = missing_binaries()
    if missing:
        raise SlurmError(f"installed {' '.join(PACKAGES)}, yet {', '.join(missing)} is missing")


def client_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without the variables that steer Slurm's commands."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(_FOREIGN_PREFIXES)}


def parse_records(text: str) -> list[dict[str, str]]:
    """The `Key=Value ...` lines of `scontrol -o show job` (or of the jobcomp/filetxt log)
    as one dict a line. A value may hold spaces (a JobName, a Reason), so a field starts
    only where ` Word=` does."""
    field = re.compile(r"(?:^| )([A-Za-z][A-Za-z0-9_:/]*)=")
    records: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        starts = list(field.finditer(line))
        if not starts:
            continue
        record: dict[str, str] = {}
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(line)
            record[match.group(1)] = line[match.end() : end]
        records.append(record)
    return records


class SlurmError(RuntimeError):
    """The cluster failed to start, or a Slurm command failed; the message says how."""


class SlurmCluster:
    """A single-node Slurm cluster owned by this process; a context manager.

    root: a directory the cluster may fill (created if missing, left in place for its
        logs); keep it short, sockets live in it.
    cpus: the node's CPU count; by default what `slurmd -C` finds (2 here: 2 single-CPU
        jobs at a time). More than the machine has is allowed (slurmd trusts slurm.conf).
    settings: slurm.conf lines to add or override, e.g. {"KillWait": 5}.
    wait_for_scheduler: make start() also wait for slurmctld's first scheduling pass (about
        3 s after it started), so that the first job starts as fast as the later ones.
    """

    partition = "debug"

    def __init__(
        self,
        root: Path | str,
        *,
        cpus: int | None = None,
        settings: Mapping[str, str | int] | None = None,
        startup_timeout: float = 30.0,
        wait_for_scheduler: bool = True,
    ) -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.wait_for_scheduler = wait_for_scheduler
        self.conf = self.root / "slurm.conf"
        self.logs = self.root / "log"
        self.jobcomp = self.logs / "jobcomp.txt"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.node_name = ""
        self.cluster_name = ""
        self.ctld_port = 0
        self.slurmd_port = 0
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._marker = f"{os.getpid()}:{self.root}"

    # -- for the tests -----------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment for Slurm client subprocesses: os.environ, cleaned of Slurm
        variables, with SLURM_CONF set to this cluster's slurm.conf."""
        return self.environ()

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Like `env`, built on `base` instead of os.environ."""
        env = client_environ(base)
        env["SLURM_CONF"] = str(self.conf)
        env[MARKER] = self._marker
        return env

    @property
    def pids(self) -> dict[str, int]:
        """The daemons this cluster started and that still run: name -> pid."""
        return {name: p.pid for name, p in self._procs.items() if p.poll() is None}

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 60.0,
        cwd: Path | str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (`squeue`, `sacct -c`...) against this cluster."""
        result = subprocess.run(
            [binary(command[0]), *command[1:]],
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
        """Submit with `sbatch --parsable ARGS`: the job id (of an array, the array's)."""
        return self.run("sbatch", "--parsable", *args, cwd=cwd).stdout.strip().split(";")[0]

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol -o show job JOB_ID`, parsed: a record a job, or a task of an array
        (plus one for an array's tasks that have not started, "ArrayTaskId=3-7%2")."""
        return parse_records(self.run("scontrol", "-o", "show", "job", job_id).stdout)

    def wait(
        self, job_id: str, *, timeout: float = 60.0, states: Iterable[str] = TERMINAL_STATES
    ) -> list[dict[str, str]]:
        """Poll (every 50 ms) until every record of JOB_ID is in `states` (by default: has
        ended); its records then. MinJobAge=3600 keeps ended jobs in `scontrol` for 1 h."""
        wanted = frozenset(states)
        deadline = time.monotonic() + timeout
        while True:
            records = self.jobs(job_id)
            if records and all(r.get("JobState") in wanted for r in records):
                return records
            if time.monotonic() > deadline:
                summary = ", ".join(f"{r.get('JobId')}={r.get('JobState')}" for r in records)
                raise SlurmError(
                    f"job {job_id} not {'/'.join(sorted(wanted))} after {timeout:.0f} s: "
                    f"{summary}\n{self.log_tails()}"
                )
            time.sleep(0.05)

    def sacct(
        self, job_id: str, fields: Sequence[str] = ("JobID", "JobName", "State", "ExitCode")
    ) -> list[dict[str, str]]:
        """`sacct -c` (the jobcomp/filetxt log) for JOB_ID. It knows plain job ids only: a
        task of an array is found by its own JobId, not as ARRAY_TASK (see `completions`)."""
        out = self.run("sacct", "-c", "-j", job_id, "-n", "-P", "-o", ",".join(fields)).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    def completions(self) -> list[dict[str, str]]:
        """The jobcomp/filetxt log itself: a record per ended job or array task, with
        JobId, JobState, ExitCode and, for a task, ArrayJobId and ArrayTaskId."""
        with contextlib.suppress(FileNotFoundError):
            return parse_records(self.jobcomp.read_text())
        return []

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of each daemon's log, for error messages."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
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
        """Write the configuration, start munged, slurmctld and slurmd, wait for the node to
        be idle. A port taken by someone else between picking and binding it makes a daemon
        exit: then everything is stopped and started again on other ports."""
        reason = availability()
        if reason is not None:
            raise SlurmError(reason)
        if len(str(self.root)) > _MAX_ROOT_LENGTH:
            raise SlurmError(f"{self.root}: too long for unix sockets, use a shorter directory")
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except BaseException as error:
                self.stop()
                if attempt == attempts or "already in use" not in str(error):
                    raise
            else:
                self.startup_seconds = time.monotonic() - began
                return

    def stop(self) -> None:
        """Cancel every job, stop the daemons this cluster started (by pid), then kill what
        still carries this cluster's marker: job steps, which slurmd leaves running."""
        if self._procs.get("slurmctld") is not None and self._procs["slurmctld"].poll() is None:
            self._cancel_all()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc)
        _sweep(self._marker)

    # -- internals ---------------------------------------------------------------------------

    def _start_once(self) -> None:
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self.ctld_port, self.slurmd_port = _free_ports(2)
        node_line = self._node_line()
        (self.root / "plugstack.conf").write_text("")
        self.conf.write_text(self._config(node_line))
        self._start_munged()
        self._spawn("slurmctld", [binary("slurmctld"), "-D", "-f", str(self.conf)])
        # `scontrol ping` answers at once; sinfo would retry a closed port for 9 s.
        self._wait_for(f"slurmctld to answer on port {self.ctld_port}", self._ctld_up)
        self._spawn("slurmd", [binary("slurmd"), "-D", "-f", str(self.conf)])
        self._wait_for(f"node {self.node_name} to be idle", self._node_idle)
        if self.wait_for_scheduler:
            self._wait_for("slurmctld's first scheduling pass", self._scheduler_ran)

    def _node_line(self) -> str:
        """`slurmd -C`'s NodeName line (the hardware slurmd will report), with our address."""
        out = subprocess.run(
            [binary("slurmd"), "-C"], env=client_environ(), capture_output=True, text=True
        ).stdout
        line = next((x for x in out.splitlines() if x.startswith("NodeName=")), "")
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "NodeName" not in fields:
            raise SlurmError(f"`slurmd -C` printed no NodeName line:\n{out}")
        self.node_name = fields["NodeName"]
        self.cluster_name = _cluster_name(self.node_name)
        if self.cpus is not None:
            for key in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
                fields.pop(key, None)
            fields.update(
                CPUs=str(self.cpus), Sockets="1", CoresPerSocket=str(self.cpus), ThreadsPerCore="1"
            )
        fields.update(NodeAddr="127.0.0.1", NodeHostname=self.node_name, State="UNKNOWN")
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def _config(self, node_line: str) -> str:
        root = self.root
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
            "StateSaveLocation": root / "state",
            "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "run" / "slurmctld.pid",
            "SlurmdPidFile": root / "run" / "slurmd.pid",
            "SlurmctldLogFile": self.logs / "slurmctld.log",
            "SlurmdLogFile": self.logs / "slurmd.log",
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
            "PlugStackConfig": root / "plugstack.conf",
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
            "KillWait": 2,  # SIGTERM to SIGKILL on scancel or time limit (default 30 s)
            "ReturnToService": 2,
            "MpiDefault": "none",
            "MailProg": "/bin/true",
        }
        if self.cpus is not None:
            settings["SlurmdParameters"] = "config_overrides"
        settings.update(self.settings)
        lines = [f"# written by tests/slurm_cluster.py for a test cluster in {root}"]
        lines += [f"{key}={value}" for key, value in settings.items()]
        lines.append(node_line)
        lines.append(
            f"PartitionName={self.partition} Nodes={self.node_name} Default=YES "
            "MaxTime=INFINITE State=UP"
        )
        return "\n".join(lines) + "\n"

    def _start_munged(self) -> None:
        """A munged of our own, with a key of our own, on a socket in our directory."""
        munge = self.root / "munge"
        key = munge / "munge.key"
        if not key.exists():
            subprocess.run(
                [binary("mungekey"), "--create", f"--keyfile={key}"],
                check=True,
                capture_output=True,
            )
        # --force: munged wants every directory above its socket to be world-searchable,
        # which a private temp dir is not; everything that talks to it here runs as root.
        self._spawn(
            "munged",
            [
                binary("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={self.logs / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        self._wait_for("munged to answer", self._munge_answers)

    def _munge_answers(self) -> bool:
        if not self.munge_socket.exists():
            return False
        command = [binary("munge"), "--no-input", f"--socket={self.munge_socket}"]
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0

    def _ctld_up(self) -> bool:
        result = self.run("scontrol", "ping", check=False, timeout=20)
        return result.returncode == 0 and " is UP" in result.stdout

    def _node_idle(self) -> bool:
        command = ["sinfo", "--noheader", "--Node", f"--nodes={self.node_name}", "--format=%T"]
        result = self.run(*command, check=False, timeout=20)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _scheduler_ran(self) -> bool:
        """Whether slurmctld's main scheduler made a pass yet (sdiag's "Total cycles").

        Slurm 22.05 reads SchedulerParameters=batch_sched_delay=0 in its first pass only;
        until then its built-in 3 s holds, and that pass comes 3 s after slurmctld started.
        An sdiag this does not understand counts as a pass.
        """
        out = self.run("sdiag", check=False, timeout=20).stdout
        match = re.search(r"Main schedule statistics.*?Total cycles:\s*(\d+)", out, re.S)
        return match is None or int(match.group(1)) > 0

    def _spawn(self, name: str, command: list[str]) -> None:
        env = client_environ()
        env["SLURM_CONF"] = str(self.conf)
        env[MARKER] = self._marker
        with open(self.logs / f"{name}.out", "ab") as out:
            self._procs[name] = subprocess.Popen(
                command,
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C goes to pytest, which stops them in order
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
                    f"waited {self.startup_timeout:.0f} s for {what}, in vain\n" + self._diagnosis()
                )
            time.sleep(0.05)

    def _diagnosis(self) -> str:
        """The daemons' log tails, and what they printed before they had a log."""
        parts = [self.log_tails()]
        for path in sorted(self.logs.glob("*.out")):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path} (its last 3000 characters)\n{text[-3000:]}")
        return "\n".join(parts)

    def _cancel_all(self) -> None:
        """Cancel all jobs, and give them KillWait to end (job steps outlive slurmd)."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.run("scancel", f"--partition={self.partition}", check=False, timeout=20)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                command = ["squeue", "--noheader", "--states=RUNNING,COMPLETING", "--format=%i"]
                if not self.run(*command, check=False, timeout=20).stdout.strip():
                    return
                time.sleep(0.1)


def _cluster_name(node_name: str) -> str:
    """A ClusterName from the host's name: lower case letters, digits and '-', 40 at most."""
    name = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-") or "node"
    return f"test-{name}"[:40]


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held open together, so they are distinct)."""
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
    """A preexec_fn giving the daemon SIGTERM when the thread that started it ends, so that
    a test process killed outright (a CI timeout, kill -9) leaves no daemon behind. libc is
    loaded here, in the parent: between fork and exec the child only calls prctl."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; reaps the process."""
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


def marked_processes(marker: str) -> list[int]:
    """The pids of the processes whose environment holds MARKER=marker."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # gone, or a kernel thread
            continue
    return found


def _sweep(marker: str) -> None:
    """SIGKILL what still carries this cluster's marker: slurmstepd and its job's processes
    (which slurmd does not take down with it), slurmctld's slurmscriptd if it was orphaned."""
    for _ in range(20):
        pids = marked_processes(marker)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "install":
        install()
        return 0
    if command == "check":
        reason = availability()
        print(reason or "a Slurm test cluster can run here")
        return 0 if reason is None else 1
    if command == "up":
        root = Path(argv[1] if len(argv) > 1 else "/tmp/slurm-test-cluster")
        with SlurmCluster(root) as cluster:
            print(f"export SLURM_CONF={cluster.conf}  # up in {cluster.startup_seconds:.1f} s")
            print("Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0
    print("usage: python tests/slurm_cluster.py install | check | up [DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
