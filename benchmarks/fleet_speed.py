#!/usr/bin/env python3
"""How the role's run time grows with the number of workers.

For each fleet size N it brings up N systemd worker containers (acc-worker image) and one
services container (MariaDB + Redis, the broker the restarted workers must answer through),
prepares them with molecule/default/prepare.yml, and times, with the same forks:

  ping      ansible -m ansible.builtin.ping over the N workers: the floor
  converge  first playbooks/site.yml run, all hosts in one batch, restarts off
  noop      the same site.yml run again: nothing to change
  audit     playbooks/audit.yml (check mode + summary)
  restart   site.yml after a settings change, restarts on, all hosts in one batch

Own container names (acc-bench-*), label and network (acc-bench-net), so it never touches
Molecule's; removed at the end, also on failure. Run it under the shared lock:

  flock /tmp/acc-molecule.lock .venv/bin/python benchmarks/fleet_speed.py --sizes 1,5,10,20

Prints a table; logs of every run go to --log-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORK = "acc-bench-net"
LABEL = "acc-bench=fleet_speed"
SERVICES = "acc-bench-services"
# systemd as PID 1, as in molecule/default/molecule.yml (privileged fails here).
SYSTEMD_FLAGS = [
    "--pull", "never", "--label", LABEL, "--network", NETWORK,
    "--cgroupns", "host", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
VENV = "/opt/airflow/venv"
# The role's two probes that import Airflow on every run (facts, then effective).
PROBE_TASKS = ("Probe the Airflow install of the worker", "Read the settings the worker's Celery app runs with")
HOME = "/home/airflow/airflow"


def sh(args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def cleanup():
    ids = sh(["docker", "ps", "-aq", "--filter", "label=" + LABEL]).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids], check=False)
    sh(["docker", "network", "rm", NETWORK], check=False)


def worker_names(n):
    return ["acc-bench-worker-%02d" % i for i in range(1, n + 1)]


def start_fleet(n, image):
    sh(["docker", "network", "create", "--label", LABEL, NETWORK])
    names = [SERVICES] + worker_names(n)
    for name in names:
        img = "acc-services:bookworm" if name == SERVICES else image
        sh(["docker", "run", "-d", "--name", name, "--hostname", name, *SYSTEMD_FLAGS, img, "/lib/systemd/systemd"])
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


def write_inventory(path, n, version):
    workers = {name: {} for name in worker_names(n)}
    inv = {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker",
                "acc_airflow_version": version,
                "acc_airflow_home": HOME,
                "acc_venv": VENV,
                "acc_metadata_url": "mysql+mysqldb://airflow:airflow-secret@%s/airflow_meta" % SERVICES,
                "acc_result_backend_url": "db+mysql://celery:celery-secret@%s/celery_results" % SERVICES,
                "acc_broker_url": "redis://%s:6379/0" % SERVICES,
                "acc_db_idle_timeout": 3600,
            },
            "children": {
                "result_backend": {"hosts": {SERVICES: {}}},
                "broker": {"hosts": {SERVICES: {}}},
                "airflow_workers": {"hosts": workers},
            },
        }
    }
    # JSON is YAML: the inventory plugin reads it as such.
    path.write_text(json.dumps(inv, indent=1))


class Runner:
    def __init__(self, inventory, forks, log_dir):
        self.inventory = inventory
        self.forks = forks
        self.log_dir = log_dir

    def env(self, count_file):
        env = dict(os.environ)
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


def per_host(values, hosts):
    nums = [values.get(h, 0) for h in hosts]
    return "%d" % nums[0] if min(nums) == max(nums) else "%d-%d" % (min(nums), max(nums))


def exec_cost(worker):
    """Seconds of one command in a worker container, median of 3, each through docker exec."""
    as_airflow = ["runuser", "-u", "airflow", "--", "env", "AIRFLOW_HOME=" + HOME, VENV + "/bin/python", "-c"]
    cases = [
        ("docker exec true", ["true"]),
        ("system python3 -c pass", ["/usr/bin/python3", "-c", "pass"]),
        ("venv python, distribution versions only", as_airflow + [
            "import importlib.metadata as m; [m.version(d) for d in ('apache-airflow', 'celery')]"]),
        ("venv python, import airflow", as_airflow + ["import airflow"]),
        ("venv python, import the worker's Celery app", as_airflow + [
            "from airflow.providers.celery.executors.celery_executor import app; app.conf.database_engine_options"]),
    ]
    out = []
    for label, cmd in cases:
        times = []
        for _ in range(3):
            start = time.monotonic()
            sh(["docker", "exec", worker, *cmd])
            times.append(time.monotonic() - start)
        out.append((label, statistics.median(times)))
    return out


def mem_available_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_rss_mib(worker):
    """Resident memory of the airflow user's processes (the Celery worker and its children)."""
    out = sh(["docker", "exec", worker, "ps", "-u", "airflow", "-o", "rss="]).stdout.split()
    return sum(int(x) for x in out) / 1024


def bench_size(n, args, log_dir):
    cleanup()
    available_before = mem_available_mib()
    inv_path = log_dir / ("inventory-%d.yml" % n)
    write_inventory(inv_path, n, args.version)
    start_fleet(n, "acc-worker:airflow-" + args.version)
    runner = Runner(str(inv_path), args.forks, log_dir)
    prep = runner.run("n%02d-prepare" % n, ["ansible-playbook", "-i", str(inv_path), "molecule/default/prepare.yml"])
    if prep["rc"] != 0:
        raise RuntimeError("prepare failed at N=%d, see %s" % (n, log_dir / ("n%02d-prepare.log" % n)))
    # The workers started at the end of prepare: measure on a fleet that has finished
    # starting (each worker logs "celery@<host> ready."), not during 20 Airflow start-ups.
    ready_start = time.monotonic()
    waiting = set(worker_names(n))
    while waiting and time.monotonic() - ready_start < 600:
        for name in sorted(waiting):
            log = sh(["docker", "exec", name, "journalctl", "-u", "airflow-worker", "-o", "cat", "--no-pager"],
                     check=False).stdout
            if re.search(r"celery@\S+ ready\.", log):
                waiting.discard(name)
        time.sleep(2)
    if waiting:
        raise RuntimeError("workers not ready after 600 s: %s" % ", ".join(sorted(waiting)))
    time.sleep(args.settle)
    info = {"prepare_seconds": prep["seconds"], "ready_seconds": time.monotonic() - ready_start, "host_mem_used_mib": available_before - mem_available_mib(),
            "worker_rss_mib": worker_rss_mib(worker_names(n)[0]), "mem_available_mib": mem_available_mib()}
    if n == min(args.sizes):
        info["exec_cost"] = exec_cost(worker_names(n)[0])

    site = ["ansible-playbook", "-i", str(inv_path), "playbooks/site.yml", "-e", "airflow_celery_config_serial=100%"]
    steps = []
    pings = [runner.run("n%02d-ping%d" % (n, i), ["ansible", "-i", str(inv_path), "airflow_workers", "-m", "ansible.builtin.ping"])
             for i in range(3)]
    ping = sorted(pings, key=lambda r: r["seconds"])[1]
    ping["label"] = "ping"
    steps.append(ping)
    steps.append(runner.run("converge", site + ["-e", "airflow_celery_config_restart=false"]))
    steps.append(runner.run("noop", site))
    steps.append(runner.run("audit", ["ansible-playbook", "-i", str(inv_path), "playbooks/audit.yml"]))
    steps.append(runner.run("restart", site + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 2}}']))
    for step in steps:
        src = log_dir / ("%s.log" % step["label"])
        if step["label"] != "ping":
            src.rename(log_dir / ("n%02d-%s.log" % (n, step["label"])))
        info.setdefault("steps", []).append({k: v for k, v in step.items() if k != "output"})
    return info


def print_table(sizes, data, forks):
    hosts_of = {n: worker_names(n) for n in sizes}
    first = min(sizes)
    mem_total = int(Path("/proc/meminfo").read_text().split()[1]) / 1048576
    print("\nFleet speed: %d cores, %.0f GiB RAM; forks %d; site.yml with -e airflow_celery_config_serial=100%%"
          " (one batch)" % (os.cpu_count(), mem_total, forks))
    print("%4s %-9s %8s %7s %8s %9s %11s %12s %9s %4s" % (
        "N", "step", "seconds", "x ping", "x N=%d" % first, "probes s", "execs/host", "results/host", "changed", "rc"))
    for n in sizes:
        steps = {s["label"]: s for s in data[n]["steps"]}
        ping = steps["ping"]["seconds"]
        for label in ("ping", "converge", "noop", "audit", "restart"):
            s = steps[label]
            base = {x["label"]: x for x in data[first]["steps"]}[label]["seconds"]
            changed = sum(1 for h in hosts_of[n] if s["recap"].get(h, [0, 0])[1] > 0)
            probes = sum(t["seconds"] for t in s["tasks"] if t["name"].endswith(PROBE_TASKS))
            print("%4d %-9s %8.1f %7.1f %8.1f %9.1f %11s %12s %9s %4d" % (
                n, label, s["seconds"], s["seconds"] / ping, s["seconds"] / base, probes,
                per_host(s["execs"], hosts_of[n]), per_host(s["results"], hosts_of[n]),
                "%d/%d" % (changed, n), s["rc"]))
        print("%4s prepare %.0f s, workers ready %.0f s later (not timed); memory: fleet took %.0f MiB of the host's, %.0f MiB still available;"
              " one worker's Airflow processes %.0f MiB RSS" % (
                  "", data[n]["prepare_seconds"], data[n].get("ready_seconds", 0), data[n]["host_mem_used_mib"], data[n]["mem_available_mib"],
                  data[n]["worker_rss_mib"]))
    for n in sizes:
        print("\nSlowest tasks at N=%d (wall seconds over all hosts):" % n)
        for s in data[n]["steps"]:
            if s["label"] in ("noop", "audit", "restart"):
                top = sorted(s["tasks"], key=lambda t: -t["seconds"])[:4]
                print("  %-8s %s" % (s["label"], "; ".join("%s %.1f" % (t["name"], t["seconds"]) for t in top)))
    cost = data[first].get("exec_cost")
    if cost:
        print("\nOne command in one idle worker container (N=%d), median of 3:" % first)
        for label, seconds in cost:
            print("  %-45s %5.2f s" % (label, seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,5,10,20", help="fleet sizes, comma-separated (default 1,5,10,20)")
    parser.add_argument("--forks", type=int, default=20, help="Ansible forks for every run (default 20)")
    parser.add_argument("--version", default="3.3.2", help="Airflow version of the acc-worker image (default 3.3.2)")
    parser.add_argument("--settle", type=float, default=10, help="seconds to wait once every worker is ready")
    parser.add_argument("--log-dir", help="where the runs' logs go (default: a new temp folder)")
    args = parser.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="fleet-speed-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print("logs in %s" % log_dir, flush=True)
    data = {}
    failed = False
    try:
        for n in args.sizes:
            start = time.monotonic()
            try:
                data[n] = bench_size(n, args, log_dir)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                # Say what happened at this size and keep the sizes measured so far.
                print("N=%d failed after %.0f s: %s %s" % (n, time.monotonic() - start, exc,
                                                          getattr(exc, "stderr", "") or ""), flush=True)
                failed = True
                break
            print("N=%d done in %.0f s" % (n, time.monotonic() - start), flush=True)
            (log_dir / "results.json").write_text(json.dumps(data, indent=1))
    finally:
        cleanup()
    if data:
        print_table(sorted(data), data, args.forks)
    return 0 if data and not failed and all(s["rc"] == 0 for n in data for s in data[n]["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
