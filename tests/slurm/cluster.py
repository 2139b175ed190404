"""A real single-node SLURM cluster (Debian's SLURM 22.05) for tests and for trying the profile.

    python tests/slurm/cluster.py start /tmp/clipsift-slurm   # installs if needed, prints the env
    export SLURM_CONF=/tmp/clipsift-slurm/slurm.conf
    snakemake --profile profiles/slurm --slurm-status-command squeue ...
    python tests/slurm/cluster.py stop /tmp/clipsift-slurm

What it does (see /work/shared/notes/slurm-local.md for why each setting is there):

- installs ``slurmctld slurmd slurm-client munge`` with apt-get when a binary is missing (root
  only; about 25 s);
- starts ``munged`` as the munge user on the system socket, unless one already answers (then it
  is left alone, and not stopped either);
- writes ``slurm.conf`` and ``gres.conf`` into a private folder that also holds the state, spool,
  logs and pid files, on free ports, so it never touches ``/etc/slurm`` or a running cluster;
- one node (this host, at 127.0.0.1) with a fake GPU (``gres gpu:1``, ``File=/dev/null``): jobs
  that ask ``--gpus=1`` get ``CUDA_VISIBLE_DEVICES=0`` and no device behind it;
- no accounting (no slurmdbd): ``sacct`` fails, so Snakemake's SLURM executor must be told
  ``--slurm-status-command squeue``; ``MinJobAge=300`` keeps finished jobs visible to ``squeue``
  and ``scontrol show job`` for 5 minutes, which is what the tests read;
- ``slurmctld`` and ``slurmd`` run in the foreground as child processes of this one, and
  ``stop()`` ends exactly those (and munged, if it was started here).

The node may declare more CPUs and memory than the machine has (``SlurmdParameters=
config_overrides``, no cgroups, no memory enforcement): the profile's real requests (a GPU job
asks for several CPUs and tens of GB) then fit, while ``--jobs`` bounds what really runs at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munged", "munge"]
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
# One test cluster per machine at a time: slurmd's configless cache link (/run/slurm/conf) and
# munged are shared by every cluster on the host. The lock is held by this process and, through
# an inherited descriptor, by the daemons, so it lasts as long as the cluster does.
LOCK = Path("/run/lock" if Path("/run/lock").is_dir() else tempfile.gettempdir())
LOCK = LOCK / "clipsift-slurm-test.lock"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if not _which(b)]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the test cluster, or None when it can (maybe after apt)."""
    missing = missing_binaries()
    if not missing:
        return None if os.geteuid() == 0 else "SLURM daemons need root (not root here)"
    if os.geteuid() != 0:
        return f"SLURM is not installed ({', '.join(missing)} missing) and installing needs root"
    if not shutil.which("apt-get"):
        return f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get"
    return None


def install() -> None:
    """apt-get the SLURM and munge packages, only if a binary is missing."""
    if not missing_binaries():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run = dict(env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], **run
        )
    except subprocess.CalledProcessError:  # stale package lists on a fresh machine
        subprocess.run(["apt-get", "update", "-qq"], **run)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], **run
        )
    if missing_binaries():
        raise RuntimeError(f"apt-get ran but {missing_binaries()} are still missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munge_ok() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=True).stdout
        subprocess.run(["unmunge"], input=cred, capture_output=True, timeout=10, check=True)
        return True
    except (subprocess.SubprocessError, OSError):
        return False


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


@dataclass
class SlurmCluster:
    """A private single-node cluster under ``root``; ``start()``, run jobs with ``env``, ``stop()``."""

    root: Path
    cpus: int = 8
    real_memory_mb: int = 64000
    gpus: int = 1
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict = field(default_factory=dict)
    ctld_port: int = 0
    lock_wait: float = 900.0  # s to wait for another test cluster on this machine to stop
    _lock: object = None
    started_munged: bool = False

    def __post_init__(self):
        self.root = Path(self.root).resolve()

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict:
        """The environment for SLURM clients (sbatch, squeue, and Snakemake's executor)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------------ setup

    def write_config(self) -> None:
        if self.gpus not in (0, 1):
            raise ValueError("the fake GPU is one /dev/null device: gpus must be 0 or 1")
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, d_port = _free_port(), _free_port()
        self.ctld_port = ctld_port
        node_line = (
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.real_memory_mb} State=UNKNOWN"
            + (f" Gres=gpu:{self.gpus}" if self.gpus else "")
        )
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "# written by tests/slurm/cluster.py",
                    "ClusterName=clipsift",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={d_port}",
                    "SlurmUser=root",
                    "SlurmctldParameters=enable_configless",
                    "AuthType=auth/munge",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd.log",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SlurmdParameters=config_overrides",
                    "DefMemPerCPU=500",
                    "MinJobAge=300",
                    "ReturnToService=2",
                    "InactiveLimit=0",
                    "KillWait=5",
                    "MailProg=/bin/true",
                    "MpiDefault=none",
                    "GresTypes=gpu",
                    node_line,
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        gres = ["AutoDetect=off"]
        if self.gpus:
            # a device file is required (a count-only line drains the node in 22.05)
            gres.append(f"NodeName={self.node} Name=gpu File=/dev/null")
        (self.root / "gres.conf").write_text("\n".join(gres) + "\n")

    def _start_munged(self) -> None:
        if _munge_ok():
            return
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", "--force"], check=True)
            shutil.chown(key, "munge", "munge")
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
        os.chmod(MUNGE_SOCKET.parent, 0o755)
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
        self.started_munged = True
        deadline = time.monotonic() + 20
        while not _munge_ok():
            if time.monotonic() > deadline:
                raise RuntimeError("munged did not come up")
            time.sleep(0.2)

    def _take_lock(self) -> None:
        fh = open(LOCK, "a+")  # noqa: SIM115 - held until stop()
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.close()
                    raise RuntimeError(
                        f"another test SLURM cluster still runs on this machine ({LOCK} is "
                        f"locked after {self.lock_wait:.0f} s; `fuser {LOCK}` shows it)"
                    ) from None
                time.sleep(1)
        self._lock = fh

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Install if needed, write the config, start munged, slurmctld and slurmd; wait for idle."""
        install()
        self._take_lock()
        self.write_config()
        self._start_munged()
        env = self.env
        for name, args in (
            ("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)]),
            # configless: slurmd fetches the config from slurmctld and caches it where client
            # commands without SLURM_CONF look (/run/slurm/conf): the executor's nested `srun`
            # inside a job drops SLURM_* variables, SLURM_CONF included
            ("slurmd", [_which("slurmd"), "-D", "--conf-server", f"127.0.0.1:{self.ctld_port}"]),
        ):
            log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - closed in stop()
            self.procs[name] = (
                subprocess.Popen(
                    args,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(self._lock.fileno(),),  # the daemons hold the lock too
                ),
                log,
            )
            if name == "slurmctld":
                self._wait(lambda: self._ok("scontrol", "ping"), 20, "slurmctld did not answer")
        deadline = time.monotonic() + timeout
        while True:
            state = self.node_state()
            if state.startswith("idle") or state.startswith("mix"):
                return self
            if "drain" in state or state.startswith("down"):
                self.scontrol("update", f"nodename={self.node}", "state=resume")
            for name, (proc, _) in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.root}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.node} not idle after {timeout:.0f} s ({state!r})")
            time.sleep(0.3)

    def stop(self) -> None:
        """End the daemons started here: slurmd, slurmctld, then munged if it was started here."""
        if self.procs:
            # cancel what is left, so that no job outlives the cluster
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
        for name in ("slurmd", "slurmctld"):
            if name not in self.procs:
                continue
            proc, log = self.procs.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
        link = Path("/run/slurm/conf")  # configless cache link made by our slurmd
        if link.is_symlink() and str(os.readlink(link)).startswith(str(self.root)):
            link.unlink()
        if self.started_munged:
            pidfile = Path("/run/munge/munged.pid")
            if pidfile.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            self.started_munged = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ queries

    def _ok(self, *args) -> bool:
        return subprocess.run(list(args), env=self.env, capture_output=True).returncode == 0

    def _wait(self, cond, timeout: float, msg: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{msg}; see {self.root}/log")
            time.sleep(0.2)

    def scontrol(self, *args) -> str:
        return subprocess.run(
            ["scontrol", *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout

    def node_state(self) -> str:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True
        )
        return out.stdout.strip().lower()

    def jobs(self) -> list[dict]:
        """Every job slurmctld still knows (finished ones for MinJobAge), as ``scontrol`` fields.

        Keys of interest: ``JobId``, ``JobName``, ``JobState``, ``Comment`` (the SLURM executor
        writes ``rule_{rule}_wildcards_{values}``), ``TRES`` (``gres/gpu=1`` for a GPU job),
        ``TresPerJob``/``TresPerNode`` (the ``--gpus``/``--gres`` request), ``NumCPUs``,
        ``MinMemoryNode``, ``TimeLimit``, ``ExitCode``.
        """
        out = subprocess.run(
            ["scontrol", "show", "job", "-o"], env=self.env, capture_output=True, text=True
        )
        if out.returncode != 0 or "No jobs in the system" in out.stdout:
            return []
        return [_fields(line) for line in out.stdout.splitlines() if line.strip()]


def _fields(line: str) -> dict:
    """``scontrol show -o`` line -> dict. Values may hold spaces (Command, Comment): a token
    without ``=`` belongs to the previous value."""
    out: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        if "=" in token and token.split("=", 1)[0].isidentifier():
            key, value = token.split("=", 1)
            out[key] = value
        elif key is not None and token:
            out[key] += " " + token
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__)
        return 2
    action, root = argv
    root = Path(root)
    if action == "start":
        reason = unavailable_reason()
        if reason:
            print(f"cannot start SLURM here: {reason}", file=sys.stderr)
            return 1
        cluster = SlurmCluster(root).start()
        # the daemons must outlive this process: detach them and record their pids
        pids = {name: proc.pid for name, (proc, _) in cluster.procs.items()}
        munged_pid = Path("/run/munge/munged.pid")
        if cluster.started_munged and munged_pid.exists():
            pids["munged"] = int(munged_pid.read_text().split()[0])
        (root / "pids").write_text("".join(f"{n} {p}\n" for n, p in pids.items()))
        print(f"SLURM up: node {cluster.node}, conf {cluster.conf}")
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    pidfile = root / "pids"
    if pidfile.exists():
        subprocess.run(
            ["scancel", "--full", "--user=root"],
            env={**os.environ, "SLURM_CONF": str(root.resolve() / "slurm.conf")},
            capture_output=True,
        )
        for line in pidfile.read_text().splitlines():
            _, pid = line.split()
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
