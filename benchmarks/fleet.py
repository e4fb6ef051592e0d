"""A test fleet for the benchmarks: N systemd worker containers (acc-worker image) and one
services container (acc-services: MariaDB + Redis), on a network of their own, prepared with
molecule/shared/prepare.yml through a generated inventory; and a runner that times Ansible
runs with the fleet_count callback. Used by benchmarks/fleet_speed.py and
benchmarks/rolling_load.py; each gives its own name prefix and label, so they never touch
Molecule's containers or each other's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = "/opt/airflow/venv"
HOME = "/home/airflow/airflow"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
READY = re.compile(r"celery@\S+ ready\.")


def sh(args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


class Fleet:
    """Containers <prefix>-services and <prefix>-worker-NN on network <prefix>-net, all with
    the docker label `label`."""

    def __init__(self, prefix, label, version):
        self.label = label
        self.network = prefix + "-net"
        self.services = prefix + "-services"
        self.worker_prefix = prefix + "-worker-"
        self.version = version
        self.image = "acc-worker:airflow-" + version

    def workers(self, n):
        return ["%s%02d" % (self.worker_prefix, i) for i in range(1, n + 1)]

    def cleanup(self):
        ids = sh(["docker", "ps", "-aq", "--filter", "label=" + self.label]).stdout.split()
        if ids:
            sh(["docker", "rm", "-f", *ids], check=False)
        sh(["docker", "network", "rm", self.network], check=False)

    def start(self, n):
        # systemd as PID 1, as in the Molecule scenarios (privileged fails here).
        flags = [
            "--pull", "never", "--label", self.label, "--network", self.network,
            "--cgroupns", "host", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
        ]
        sh(["docker", "network", "create", "--label", self.label, self.network])
        names = [self.services] + self.workers(n)
        for name in names:
            img = "acc-services:bookworm" if name == self.services else self.image
            sh(["docker", "run", "-d", "--name", name, "--hostname", name, *flags, img, "/lib/systemd/systemd"])
        # The first tasks talk to systemd: wait until it has booted in every container.
        for name in names:
            # 2 cores booting 21 systemd containers at once: allow minutes, not seconds.
            for _ in range(360):
                state = sh(["docker", "exec", name, "systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("%s: systemd did not boot (%s)" % (name, state))

    def write_inventory(self, path, n):
        inv = {
            "all": {
                "vars": {
                    "ansible_connection": "community.docker.docker",
                    "acc_airflow_version": self.version,
                    "acc_airflow_home": HOME,
                    "acc_venv": VENV,
                    "acc_metadata_url": "mysql+mysqldb://airflow:airflow-secret@%s/airflow_meta" % self.services,
                    "acc_result_backend_url": "db+mysql://celery:celery-secret@%s/celery_results" % self.services,
                    "acc_broker_url": "redis://%s:6379/0" % self.services,
                    "acc_db_idle_timeout": 3600,
                },
                "children": {
                    "result_backend": {"hosts": {self.services: {}}},
                    "broker": {"hosts": {self.services: {}}},
                    "airflow_workers": {"hosts": {name: {} for name in self.workers(n)}},
                },
            }
        }
        # JSON is YAML: the inventory plugin reads it as such.
        path.write_text(json.dumps(inv, indent=1))

    def wait_ready(self, names, timeout=600, since=None):
        """Waits until each worker has logged "celery@<host> ready." (after `since`, a Unix time,
        if given); seconds it took."""
        start = time.monotonic()
        waiting = set(names)
        after = ["--since", "@%d" % since] if since else []
        while waiting and time.monotonic() - start < timeout:
            for name in sorted(waiting):
                log = sh(["docker", "exec", name, "journalctl", "-u", "airflow-worker", "-o", "cat", "--no-pager", *after],
                         check=False).stdout
                if READY.search(log):
                    waiting.discard(name)
            time.sleep(2)
        if waiting:
            raise RuntimeError("workers not ready after %d s: %s" % (timeout, ", ".join(sorted(waiting))))
        return time.monotonic() - start


class Runner:
    """Runs ansible commands from the project root with the fleet_count callback, and logs
    each run to <log_dir>/<label>.log."""

    def __init__(self, inventory, forks, log_dir):
        self.inventory = inventory
        self.forks = forks
        self.log_dir = log_dir

    def env(self, count_file):
        env = dict(os.environ)
        # The Ansible commands of the interpreter running the benchmark (.venv/bin/python
        # benchmarks/...), whether or not that venv is on the caller's PATH.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update({
            "ANSIBLE_FORKS": str(self.forks),
            "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "benchmarks" / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "fleet_count",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "FLEET_COUNT_FILE": str(count_file),
            "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
        })
        return env

    def run(self, label, args):
        count_file = self.log_dir / (label + ".execs")
        count_file.unlink(missing_ok=True)
        start = time.monotonic()
        proc = subprocess.run(args, cwd=ROOT, env=self.env(count_file), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - start
        (self.log_dir / (label + ".log")).write_text("$ %s\n%s\nrc=%d seconds=%.1f\n" % (
            " ".join(args), proc.stdout, proc.returncode, seconds))
        execs = {}
        if count_file.exists():
            for host in count_file.read_text().split():
                execs[host] = execs.get(host, 0) + 1
        counts = {}
        results_file = Path(str(count_file) + ".results.json")
        if results_file.exists():
            counts = json.loads(results_file.read_text())
        recap = {m[0]: [int(x) for x in m[1:]] for m in RECAP.findall(proc.stdout)}
        return {"label": label, "seconds": seconds, "rc": proc.returncode, "execs": execs,
                "results": counts.get("results", {}), "tasks": counts.get("tasks", []),
                "recap": recap, "output": proc.stdout}
