"""A real single-node SLURM cluster (Debian's SLURM 22.05) for tests and for trying the profile.

    python tests/slurm/cluster.py start /tmp/clipsift-slurm   # installs if needed, prints the env
    export SLURM_CONF=/tmp/clipsift-slurm/slurm.conf
    snakemake --profile profiles/slurm --slurm-status-command squeue ...
    python tests/slurm/cluster.py stop /tmp/clipsift-slurm

    python tests/slurm/cluster.py start /tmp/clipsift-slurm --accounting   # sacct works

What it does (see /work/shared/notes/slurm-local.md for why each setting is there):

- installs ``slurmctld slurmd slurm-client munge`` with apt-get when a binary is missing (root
  only; about 25 s);
- starts ``munged`` as the munge user on the system socket, unless one already answers (then it
  is left alone, and not stopped either);
- writes ``slurm.conf`` and ``gres.conf`` into a private folder that also holds the state, spool,
  logs and pid files, on free ports, so it never touches ``/etc/slurm`` or a running cluster;
- one node (this host, at 127.0.0.1) with a fake GPU (``gres gpu:1``, ``File=/dev/null``): jobs
  that ask ``--gpus=1`` get ``CUDA_VISIBLE_DEVICES=0`` and no device behind it;
- no accounting by default (no slurmdbd): ``sacct`` fails, so Snakemake's SLURM executor must be
  told ``--slurm-status-command squeue``; ``MinJobAge=3600`` keeps finished jobs visible to
  ``squeue`` and ``scontrol show job`` for an hour (a test on a loaded CI machine read its first
  job's record more than 5 minutes after it ended), which is what the tests read;
- with ``accounting=True`` (``--accounting``) also a private MariaDB (data, socket and TCP port in
  the folder; never the system's ``/var/lib/mysql`` or a running server) and ``slurmdbd`` on it,
  the cluster registered with a default account ``clipsift`` for root: ``sacct`` then reports job
  states, as on a production cluster (5 to 10 s more to start, half of it mariadb-install-db;
  ``install()`` adds ``slurmdbd mariadb-server-core mariadb-client-core``);
- ``slurmctld`` and ``slurmd`` (and ``mariadbd``, ``slurmdbd``) run in the foreground as child
  processes of this one, and ``stop()`` ends exactly those (and munged, if it was started here).

The node may declare more CPUs and memory than the machine has (``SlurmdParameters=
config_overrides``, no cgroups, no memory enforcement): the profile's real requests (a GPU job
asks for several CPUs and tens of GB) then fit, while ``--jobs`` bounds what really runs at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
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
# Accounting adds slurmdbd (it pulls in the MySQL storage plugin) and MariaDB. Not the
# mariadb-server package: its postinst creates /var/lib/mysql and starts the system's server;
# mariadb-server-core has just mariadbd and mariadb-install-db, and mariadb-client-core the
# `mariadb` client and the my_print_defaults that mariadb-install-db calls.
ACCOUNTING_PACKAGES = ["slurmdbd", "mariadb-server-core", "mariadb-client-core"]
ACCOUNTING_BINARIES = ["slurmdbd", "sacct", "sacctmgr", "mariadbd", "mariadb-install-db", "mariadb"]
ACCOUNT = "clipsift"  # the default account root's jobs are recorded under
DB_NAME, DB_USER = "slurm_acct_db", "slurm"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
# One test cluster per machine at a time: slurmd's configless cache link (/run/slurm/conf) and
# munged are shared by every cluster on the host. The lock is held by this process and, through
# an inherited descriptor, by the daemons, so it lasts as long as the cluster does.
LOCK = Path("/run/lock" if Path("/run/lock").is_dir() else tempfile.gettempdir())
LOCK = LOCK / "clipsift-slurm-test.lock"


def missing_binaries(accounting: bool = False) -> list[str]:
    wanted = BINARIES + (ACCOUNTING_BINARIES if accounting else [])
    return [b for b in wanted if not _which(b)]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def unavailable_reason(accounting: bool = False) -> str | None:
    """Why this machine cannot run the test cluster (with accounting: slurmdbd and MariaDB too),
    or None when it can (maybe after apt)."""
    missing = missing_binaries(accounting)
    what = "SLURM with accounting (slurmdbd, MariaDB)" if accounting else "SLURM"
    if not missing:
        return None if os.geteuid() == 0 else "SLURM daemons need root (not root here)"
    if os.geteuid() != 0:
        return f"{what} is not installed ({', '.join(missing)} missing) and installing needs root"
    if not shutil.which("apt-get"):
        return f"{what} is not installed ({', '.join(missing)} missing) and there is no apt-get"
    return None


def install(accounting: bool = False) -> None:
    """apt-get the SLURM and munge packages (with accounting: slurmdbd and MariaDB's too), only if
    a binary is missing."""
    if not missing_binaries(accounting):
        return
    packages = PACKAGES + (ACCOUNTING_PACKAGES if accounting else [])
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run = dict(env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], **run
        )
    except subprocess.CalledProcessError:  # stale package lists on a fresh machine
        subprocess.run(["apt-get", "update", "-qq"], **run)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], **run
        )
    if missing_binaries(accounting):
        raise RuntimeError(f"apt-get ran but {missing_binaries(accounting)} are still missing")


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
    accounting: bool = False  # slurmdbd + a private MariaDB, so that `sacct` works
    cpus: int = 8
    real_memory_mb: int = 64000
    gpus: int = 1
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict = field(default_factory=dict)
    ctld_port: int = 0
    dbd_port: int = 0  # slurmdbd, with accounting
    db_port: int = 0  # MariaDB, with accounting
    _db_password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    lock_wait: float = 900.0  # s to wait for another test cluster on this machine to stop
    _lock: object = None
    started_munged: bool = False

    def __post_init__(self):
        self.root = Path(self.root).resolve()

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def db_socket(self) -> Path:
        return self.root / "mariadb" / "mariadbd.sock"

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
        if self.accounting:
            self.dbd_port, self.db_port = _free_port(), _free_port()
            # slurmctld sends job records to our slurmdbd; clients (sacct, sacctmgr) read the
            # same lines to find it. States and times only: JobAcctGatherType stays none, so
            # sacct has no usage figures (MaxRSS, TotalCPU)
            accounting = [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.dbd_port}",
            ]
        else:
            accounting = ["AccountingStorageType=accounting_storage/none"]
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
                    *accounting,
                    "JobCompType=jobcomp/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SlurmdParameters=config_overrides",
                    "DefMemPerCPU=500",
                    "MinJobAge=3600",
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
        if self.accounting:
            self._write_slurmdbd_conf()

    def _write_slurmdbd_conf(self) -> None:
        """slurmdbd.conf beside slurm.conf: slurmdbd looks for it in SLURM_CONF's folder."""
        r = self.root
        text = "\n".join(
            [
                "# written by tests/slurm/cluster.py",
                "AuthType=auth/munge",
                # slurmdbd refuses to run unless DbdHost is this host's name or "localhost"
                "DbdHost=localhost",
                f"DbdPort={self.dbd_port}",
                # as in slurm.conf: slurmctld connects as root, which must be slurmdbd's user
                "SlurmUser=root",
                f"PidFile={r}/slurmdbd.pid",
                f"LogFile={r}/log/slurmdbd.log",
                "DebugLevel=info",
                "StorageType=accounting_storage/mysql",
                # TCP to our own server: without a host the client library would take the
                # system's socket (/run/mysqld), i.e. somebody else's server
                "StorageHost=127.0.0.1",
                f"StoragePort={self.db_port}",
                f"StorageLoc={DB_NAME}",
                f"StorageUser={DB_USER}",
                f"StoragePass={self._db_password}",
                "",
            ]
        )
        path = r / "slurmdbd.conf"
        path.unlink(missing_ok=True)
        # it holds the database password: slurmdbd insists on mode 600, owned by its SlurmUser
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        shutil.chown(path, "root", "root")

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

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        """Start a daemon in the foreground as a child; its output goes to ``log/{name}.out``."""
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(self._lock.fileno(),),  # the daemons hold the lock too
        )
        self.procs[name] = (proc, log)
        return proc

    def _start_accounting(self) -> None:
        """MariaDB in the folder, slurmdbd on it, and the cluster, account and user registered."""
        db = self.root / "mariadb"
        data = db / "data"
        (db / "tmp").mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(self.db_socket)) > 107:  # sun_path holds 108 bytes with the NUL
            raise RuntimeError(f"{self.root} is too long a path for MariaDB's socket")
        # plain synchronous file I/O: container seccomp profiles often forbid io_uring and
        # native AIO, and a few job records need neither
        sync_io = "--innodb-use-native-aio=0"
        if not (data / "mysql").is_dir():  # kept across stop/start of the same folder
            # system tables; root@localhost logs in by its unix user (socket auth), so the setup
            # below needs no password; no test database, no host name lookups
            out = subprocess.run(
                [
                    _which("mariadb-install-db"),
                    "--no-defaults",
                    "--user=root",
                    f"--datadir={data}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    sync_io,  # passed on to mariadbd --bootstrap
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed:\n{out.stdout}{out.stderr}")
        mariadb = self._spawn(
            "mariadb",
            [
                _which("mariadbd"),
                # first, or it is ignored: never read /etc/mysql, whose datadir and socket are
                # the system server's
                "--no-defaults",
                # mariadbd refuses root unless told; the mysql user comes only with mariadb-server
                "--user=root",
                f"--datadir={data}",
                f"--socket={self.db_socket}",
                f"--pid-file={db}/mariadbd.pid",
                f"--tmpdir={db}/tmp",
                f"--log-error={self.root}/log/mariadb.log",
                # TCP for slurmdbd, on loopback only and on a free port
                "--bind-address=127.0.0.1",
                f"--port={self.db_port}",
                # grants name 127.0.0.1, and no connection waits for a DNS lookup
                "--skip-name-resolve",
                sync_io,
            ],
        )
        self._wait(
            lambda: self._sql("SELECT 1").returncode == 0, 60, "MariaDB did not answer", mariadb
        )
        # a new password each start (slurmdbd.conf has just been written with it)
        user = f"'{DB_USER}'@'127.0.0.1'"
        out = self._sql(
            f"CREATE DATABASE IF NOT EXISTS {DB_NAME};"
            f"CREATE OR REPLACE USER {user} IDENTIFIED BY '{self._db_password}';"
            f"GRANT ALL ON {DB_NAME}.* TO {user};"
        )
        if out.returncode != 0:
            raise RuntimeError(f"could not create the accounting database: {out.stderr}")
        # slurmdbd finds slurmdbd.conf beside SLURM_CONF (self.env); on the first start it
        # creates its tables before it answers
        slurmdbd = self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
        self._wait(
            lambda: self._ok("sacctmgr", "-n", "list", "cluster"),
            90,
            "slurmdbd did not answer",
            slurmdbd,
        )
        # the cluster, and root's jobs under a default account, as on a production cluster
        # (Snakemake's SLURM executor looks up the user's default account with sacctmgr)
        self._register("cluster", "clipsift")
        self._register(
            "account",
            ACCOUNT,
            "Cluster=clipsift",
            "Description=clipsift tests",
            "Organization=clipsift",
        )
        self._register("user", "root", f"Account={ACCOUNT}", "Cluster=clipsift")
        # root already exists, under the account "root": adding it keeps that default
        out = self._sacctmgr("modify", "user", "root", "set", f"DefaultAccount={ACCOUNT}")
        if out.returncode != 0:
            raise RuntimeError(f"sacctmgr could not set root's default account: {out.stdout}")

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Install if needed, write the config, start munged, (with accounting: MariaDB and
        slurmdbd,) slurmctld and slurmd; wait for the node to be idle."""
        install(self.accounting)
        self._take_lock()
        try:
            self._start_daemons(timeout)
        except BaseException:
            # what did start would hold the lock for good (and `with` calls no __exit__ here)
            self.stop()
            raise
        return self

    def _start_daemons(self, timeout: float) -> None:
        self.write_config()
        self._start_munged()
        if self.accounting:
            # before slurmctld, which reads the cluster's TRES and associations as it starts
            self._start_accounting()
        for name, args in (
            ("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)]),
            # configless: slurmd fetches the config from slurmctld and caches it where client
            # commands without SLURM_CONF look (/run/slurm/conf): the executor's nested `srun`
            # inside a job drops SLURM_* variables, SLURM_CONF included
            ("slurmd", [_which("slurmd"), "-D", "--conf-server", f"127.0.0.1:{self.ctld_port}"]),
        ):
            self._spawn(name, args)
            if name == "slurmctld":
                self._wait(lambda: self._ok("scontrol", "ping"), 20, "slurmctld did not answer")
        deadline = time.monotonic() + timeout
        while True:
            state = self.node_state()
            if state.startswith("idle") or state.startswith("mix"):
                return
            if "drain" in state or state.startswith("down"):
                self.scontrol("update", f"nodename={self.node}", "state=resume")
            for name, (proc, _) in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.root}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.node} not idle after {timeout:.0f} s ({state!r})")
            time.sleep(0.3)

    def stop(self) -> None:
        """End the daemons started here: slurmd, slurmctld, (slurmdbd, MariaDB,) then munged if
        it was started here."""
        if self.procs:
            # cancel what is left, so that no job outlives the cluster
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
        # one by one, each after the ones that write to it: slurmctld sends its last job records
        # to slurmdbd as it ends, and slurmdbd writes them to MariaDB
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadb"):
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

    def _wait(self, cond, timeout: float, msg: str, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{msg}: it exited ({proc.returncode}); see {self.root}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{msg}; see {self.root}/log")
            time.sleep(0.2)

    def _sql(self, statements: str) -> subprocess.CompletedProcess:
        """Run SQL as MariaDB's root, over our server's socket (never the system's)."""
        return subprocess.run(
            [
                _which("mariadb"),
                "--no-defaults",
                "-u",
                "root",
                f"--socket={self.db_socket}",
                "-e",
                statements,
            ],
            capture_output=True,
            text=True,
        )

    def _sacctmgr(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["sacctmgr", "-i", *args], env=self.env, capture_output=True, text=True
        )

    def _register(self, *args: str) -> None:
        """``sacctmgr -i add ...``, where "already there" (a restart on the same folder) is fine."""
        out = self._sacctmgr("add", *args)
        said = out.stdout + out.stderr
        if out.returncode != 0 and "already exists" not in said and "Nothing new" not in said:
            raise RuntimeError(f"sacctmgr add {' '.join(args)} failed: {said.strip()}")

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

    def accounted_state(self, job_id: str | int) -> str:
        """The job's state in the accounting records, as ``sacct -X`` gives it (``COMPLETED``,
        ``FAILED``, ``OUT_OF_MEMORY``, ``CANCELLED`` without its "by UID"), or "" while slurmdbd
        has no record (slurmctld sends them a moment after the change). Needs ``accounting``."""
        if not self.accounting:
            raise RuntimeError("this cluster has no accounting: SlurmCluster(..., accounting=True)")
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"],
            env=self.env,
            capture_output=True,
            text=True,
        )
        words = out.stdout.split()
        return words[0] if out.returncode == 0 and words else ""


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


def _running(pid: int) -> bool:
    """Whether the process still runs (a zombie does not: its parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("--")]
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2 or args[0] not in ("start", "stop") or set(flags) - {"--accounting"}:
        print(__doc__)
        return 2
    action, root = args
    root = Path(root)
    accounting = "--accounting" in flags  # for stop, the pids file says it all
    if action == "start":
        reason = unavailable_reason(accounting)
        if reason:
            print(f"cannot start SLURM here: {reason}", file=sys.stderr)
            return 1
        cluster = SlurmCluster(root, accounting=accounting).start()
        # the daemons must outlive this process: detach them and record their pids, in the
        # order `stop` ends them: the SLURM daemons, then the accounting ones, then munged
        procs = cluster.procs
        order = [n for n in procs if n not in ("slurmdbd", "mariadb")]
        order += [n for n in ("slurmdbd", "mariadb") if n in procs]
        pids = {name: procs[name][0].pid for name in order}
        munged_pid = Path("/run/munge/munged.pid")
        if cluster.started_munged and munged_pid.exists():
            pids["munged"] = int(munged_pid.read_text().split()[0])
        (root / "pids").write_text("".join(f"{n} {p}\n" for n, p in pids.items()))
        print(f"SLURM up: node {cluster.node}, conf {cluster.conf}")
        if accounting:
            print(f"accounting: slurmdbd on port {cluster.dbd_port}, MariaDB {cluster.db_socket}")
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    pidfile = root / "pids"
    if pidfile.exists():
        subprocess.run(
            ["scancel", "--full", "--user=root"],
            env={**os.environ, "SLURM_CONF": str(root.resolve() / "slurm.conf")},
            capture_output=True,
        )
        entries = [line.split() for line in pidfile.read_text().splitlines()]
        # with accounting, each daemon only after the ones before it have gone (slurmctld sends
        # its last records to slurmdbd, which writes them to MariaDB); without, all at once
        one_by_one = any(name == "slurmdbd" for name, _ in entries)
        for _, pid in entries:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
            deadline = time.monotonic() + 30
            while one_by_one and _running(int(pid)) and time.monotonic() < deadline:
                time.sleep(0.2)
        pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
