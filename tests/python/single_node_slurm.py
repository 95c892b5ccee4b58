"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd started as this
machine's own (Debian's slurm-wlm and munge), configured in a temporary folder. ``start`` returns
the environment clients need (SLURM_CONF) or raises ``Unavailable`` with the reason it cannot run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")


class Unavailable(RuntimeError):
    pass


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )


CONF = """ClusterName=voxelytics-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={port}
SlurmdPort={port2}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MaxArraySize=10000
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.processes: list[subprocess.Popen] = []
        self.env = dict(os.environ, SLURM_CONF=str(root / "slurm.conf"))

    def start(self) -> dict:
        missing = [d for d in DAEMONS if _find(d) is None]
        if missing:
            raise Unavailable(
                f"SLURM is not installed ({', '.join(missing)} missing: apt-get install slurm-wlm munge)"
            )
        if os.geteuid() != 0:
            raise Unavailable("slurmd must run as root to start jobs")
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        (self.root / "spool").mkdir(exist_ok=True)
        self._munge()
        host = socket.gethostname().split(".")[0]
        port = _free_port()
        text = CONF.format(host=host, root=self.root, port=port, port2=_free_port(), cpus=os.cpu_count() or 1)
        (self.root / "slurm.conf").write_text(text)
        for daemon in ("slurmctld", "slurmd"):
            self.processes.append(subprocess.Popen(
                [_find(daemon), "-D", "-f", str(self.root / "slurm.conf")], env=self.env,
                stdout=subprocess.DEVNULL, stderr=open(self.root / f"{daemon}.err", "w"),  # noqa: SIM115
                start_new_session=True,
            ))  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                [_find("sinfo"), "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
            )
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed"):
                return self.env
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.5)
        logs = "".join(
            f"\n--- {f.name}:\n" + f.read_text()[-1500:]
            for f in sorted(self.root.glob("slurm*.*"))
            if f.suffix in (".log", ".err")
        )
        raise Unavailable(f"SLURM did not come up (sinfo: {out.stdout.strip() or out.stderr.strip()}){logs}")

    def _munge(self) -> None:
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_dir = Path("/run/munge")
        socket_dir.mkdir(parents=True, exist_ok=True)
        if (socket_dir / "munge.socket.2").exists():
            ok = subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0
            if ok:
                return  # a munged already runs here
        for d in ("/var/lib/munge", "/var/log/munge"):
            os.makedirs(d, exist_ok=True)
        p = subprocess.Popen(
            [_find("munged"), "--foreground", "--force", f"--key-file={key}", "--num-threads=2"],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "munged.err", "w"),  # noqa: SIM115
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(p)
        for _ in range(100):
            if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
                return
            if p.poll() is not None:
                break
            time.sleep(0.1)
        raise Unavailable(f"munged did not start: {(self.root / 'munged.err').read_text()[-800:]}")

    def stop(self) -> None:
        subprocess.run([_find("scancel") or "scancel", "--user=root"], env=self.env, capture_output=True)
        for p in reversed(self.processes):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
