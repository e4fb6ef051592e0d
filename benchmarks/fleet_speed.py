#!/usr/bin/env python3
"""How the role's run time grows with the number of workers.

For each fleet size N it brings up N systemd worker containers (acc-worker image) and one
services container (MariaDB + Redis, the broker the restarted workers must answer through),
prepares them with molecule/shared/prepare.yml, and times, with the same forks:

  ping      ansible -m ansible.builtin.ping over the N workers: the floor
  import    ansible -m ansible.builtin.command over the N workers, each building its worker's
            Celery app in the venv as the unit's user: what one read through the app costs the
            fleet at once, the least any check through it costs
  converge    first playbooks/site.yml run, all hosts in one batch, restarts off
  restart     site.yml after a settings change, restarts on, all hosts in one batch: the workers
              end in sync and recorded
  noop        `ansible-playbook playbooks/site.yml` with the same settings, as the README gives it
              (serial: 1): every record holds
  audit       playbooks/audit.yml (check mode + summary), as the README gives it
  audit_full  the same with airflow_celery_config_full_check=true: every worker read through its app
  rolling     site.yml after another settings change, as the README gives it (serial: 1): every
              worker changed and restarted, one host at a time
  own_restart ansible -m ansible.builtin.systemd_service restarting the N workers at once, until each
              has logged "ready." again: the workers' own restart time, without the role
  own_restart_one  the same for the first worker alone, its neighbours running: what one host's
              restart costs in a rolling change

Below each size's table it also prints the role's restart step (its handler: the unit restarted,
then the wait for the worker's Celery ping and digest) in `restart` against own_restart, and its
mean per host in `rolling` against own_restart_one.

Own container names (acc-bench-*), label and network (acc-bench-net), so it never touches
Molecule's; removed at the end, also on failure. Run it under the shared lock:

  flock /tmp/acc-molecule.lock .venv/bin/python benchmarks/fleet_speed.py --sizes 1,5,10,20

Prints a table; logs of every run go to --log-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet import HOME, VENV, Fleet, Runner, sh

# The role's two probe tasks: facts (imports Airflow on every run), then effective (imports it
# again only after a write; the report's airflow_imports counts them).
PROBE_TASKS = ("Probe the Airflow install of the worker", "Read the settings the worker's Celery app runs with")
# The role's restart step: the task that runs its handler (tasks/restart_if_needed.yml), whose
# wall time holds the unit's restart and the wait until the worker answers a Celery ping and
# gives its digest (tasks/restart.yml). Compared with own_restart.
RESTART_TASK = "Restart the worker now if anything changed"


def restart_step_seconds(tasks):
    """Wall seconds of the role's restart step in a run, summed over its batches (one batch
    restarts every host in one step; serial: 1 has a step per host), or None if it has none."""
    found = [t["seconds"] for t in tasks if t["name"].endswith(RESTART_TASK)]
    return sum(found) if found else None


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


def bench_size(n, args, fleet, log_dir):
    fleet.cleanup()
    available_before = mem_available_mib()
    inv_path = log_dir / ("inventory-%d.yml" % n)
    fleet.write_inventory(inv_path, n)
    fleet.start(n)
    runner = Runner(str(inv_path), args.forks, log_dir)
    prep = runner.run("n%02d-prepare" % n, ["ansible-playbook", "-i", str(inv_path), "molecule/shared/prepare.yml"])
    if prep["rc"] != 0:
        raise RuntimeError("prepare failed at N=%d, see %s" % (n, log_dir / ("n%02d-prepare.log" % n)))
    # The workers started at the end of prepare: measure on a fleet that has finished
    # starting (each worker logs "celery@<host> ready."), not during 20 Airflow start-ups.
    ready_seconds = fleet.wait_ready(fleet.workers(n))
    time.sleep(args.settle)
    info = {"prepare_seconds": prep["seconds"], "ready_seconds": ready_seconds + args.settle, "host_mem_used_mib": available_before - mem_available_mib(),
            "worker_rss_mib": worker_rss_mib(fleet.workers(n)[0]), "mem_available_mib": mem_available_mib()}
    if n == min(args.sizes):
        info["exec_cost"] = exec_cost(fleet.workers(n)[0])

    site = ["ansible-playbook", "-i", str(inv_path), "playbooks/site.yml"]
    steps = []
    pings = [runner.run("n%02d-ping%d" % (n, i), ["ansible", "-i", str(inv_path), "airflow_workers", "-m", "ansible.builtin.ping"])
             for i in range(3)]
    ping = sorted(pings, key=lambda r: r["seconds"])[1]
    ping["label"] = "ping"
    steps.append(ping)
    read_app = ("runuser -u airflow -- env AIRFLOW_HOME=%s %s/bin/python -c "
                "'from airflow.providers.celery.executors.celery_executor import app; app.conf.database_engine_options'"
                % (HOME, VENV))
    one_import = runner.run("n%02d-import" % n, ["ansible", "-i", str(inv_path), "airflow_workers", "-m", "ansible.builtin.command",
                                                 "-a", read_app])
    one_import["label"] = "import"
    one_import["imports"] = {h: 1 for h in fleet.workers(n)}
    steps.append(one_import)
    audit = ["ansible-playbook", "-i", str(inv_path), "playbooks/audit.yml"]
    # The first run writes with restarts off (its own cost); the settings change restarts every
    # worker in one batch and leaves them in sync, recorded; the no-op and the audits are then
    # the commands exactly as the README gives them (site.yml's serial: 1).
    one_batch = ["-e", "airflow_celery_config_serial=100%"]
    for label, cmd in (("converge", site + one_batch + ["-e", "airflow_celery_config_restart=false"]),
                       ("restart", site + one_batch + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 2}}']),
                       ("noop", site + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 2}}']),
                       ("audit", audit + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 2}}']),
                       ("audit_full", audit + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 2}}',
                                               "-e", "airflow_celery_config_full_check=true"]),
                       ("rolling", site + ["-e", '{"airflow_celery_config_settings": {"worker_prefetch_multiplier": 3}}'])):
        # The summary's JSON table carries each worker's report, its airflow_imports included.
        table = log_dir / ("n%02d-%s.json" % (n, label))
        step = runner.run(label, cmd + ["-e", "airflow_celery_config_audit_json=%s" % table])
        workers = json.loads(table.read_text())["workers"] if table.exists() else []
        step["imports"] = {w["worker"]: int(w.get("airflow_imports", 0)) for w in workers}
        steps.append(step)
    # The workers' own restart, the reference of the restart step: the unit restarted, then
    # each worker's "ready." after it (to the second: journalctl's --since).
    since = int(time.time())
    restart_units = ["ansible", "-i", str(inv_path), "airflow_workers", "-m", "ansible.builtin.systemd_service",
                     "-a", "name=airflow-worker state=restarted"]
    own = runner.run("n%02d-own_restart" % n, restart_units)
    own["seconds"] += fleet.wait_ready(fleet.workers(n), since=since)
    own["label"] = "own_restart"
    steps.append(own)
    first = fleet.workers(n)[0]
    since = int(time.time())
    own_one = runner.run("n%02d-own_restart_one" % n, restart_units + ["--limit", first])
    own_one["seconds"] += fleet.wait_ready([first], since=since)
    own_one["label"] = "own_restart_one"
    steps.append(own_one)
    for step in steps:
        src = log_dir / ("%s.log" % step["label"])
        if step["label"] not in ("ping", "import", "own_restart", "own_restart_one"):
            src.rename(log_dir / ("n%02d-%s.log" % (n, step["label"])))
        info.setdefault("steps", []).append({k: v for k, v in step.items() if k != "output"})
    return info


def print_table(sizes, data, forks, fleet):
    hosts_of = {n: fleet.workers(n) for n in sizes}
    first = min(sizes)
    mem_total = int(Path("/proc/meminfo").read_text().split()[1]) / 1048576
    print("\nFleet speed: %d cores, %.0f GiB RAM; forks %d; converge and restart with -e airflow_celery_config_serial=100%%"
          " (one batch); noop and audits as the README gives them" % (os.cpu_count(), mem_total, forks))
    print("%4s %-10s %8s %7s %8s %9s %11s %12s %12s %9s %4s" % (
        "N", "step", "seconds", "x ping", "x N=%d" % first, "probes s", "execs/host", "results/host", "imports/host",
        "changed", "rc"))
    for n in sizes:
        steps = {s["label"]: s for s in data[n]["steps"]}
        ping = steps["ping"]["seconds"]
        for label in ("ping", "import", "converge", "restart", "own_restart", "noop", "audit", "audit_full", "rolling",
                      "own_restart_one"):
            s = steps[label]
            base = {x["label"]: x for x in data[first]["steps"]}[label]["seconds"]
            changed = sum(1 for h in hosts_of[n] if s["recap"].get(h, [0, 0])[1] > 0)
            probes = sum(t["seconds"] for t in s["tasks"] if t["name"].endswith(PROBE_TASKS))
            print("%4d %-10s %8.1f %7.1f %8.1f %9.1f %11s %12s %12s %9s %4d" % (
                n, label, s["seconds"], s["seconds"] / ping, s["seconds"] / base, probes,
                per_host(s["execs"], hosts_of[n]), per_host(s["results"], hosts_of[n]),
                per_host(s.get("imports", {}), hosts_of[n]), "%d/%d" % (changed, n), s["rc"]))
        batch = restart_step_seconds(steps["restart"]["tasks"])
        own = steps["own_restart"]["seconds"]
        if batch is not None:
            print("%4s the role's restart step (its handler: unit restarted, then the Celery ping and digest), one batch:"
                  " %.1f s against own_restart %.1f s, %+.1f s, %+.1f s per host" % ("", batch, own, batch - own, (batch - own) / n))
        rolling = restart_step_seconds(steps["rolling"]["tasks"])
        own_one = steps["own_restart_one"]["seconds"]
        if rolling is not None:
            print("%4s the same in rolling (serial: 1): %.1f s per host (%.1f s over %d hosts) against own_restart_one %.1f s, %+.1f s"
                  % ("", rolling / n, rolling, n, own_one, rolling / n - own_one))
        print("%4s prepare %.0f s, workers ready %.0f s later (not timed); memory: fleet took %.0f MiB of the host's, %.0f MiB still available;"
              " one worker's Airflow processes %.0f MiB RSS" % (
                  "", data[n]["prepare_seconds"], data[n].get("ready_seconds", 0), data[n]["host_mem_used_mib"], data[n]["mem_available_mib"],
                  data[n]["worker_rss_mib"]))
    for n in sizes:
        print("\nSlowest tasks at N=%d (wall seconds over all hosts):" % n)
        for s in data[n]["steps"]:
            if s["label"] in ("noop", "audit", "audit_full", "restart", "rolling"):
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
    fleet = Fleet("acc-bench", "acc-bench=fleet_speed", args.version)
    data = {}
    failed = False
    try:
        for n in args.sizes:
            start = time.monotonic()
            try:
                data[n] = bench_size(n, args, fleet, log_dir)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                # Say what happened at this size and keep the sizes measured so far.
                print("N=%d failed after %.0f s: %s %s" % (
                    n, time.monotonic() - start, exc, getattr(exc, "stderr", "") or ""), flush=True)
                failed = True
                break
            print("N=%d done in %.0f s" % (n, time.monotonic() - start), flush=True)
            (log_dir / "results.json").write_text(json.dumps(data, indent=1))
    finally:
        fleet.cleanup()
    if data:
        print_table(sorted(data), data, args.forks, fleet)
    return 0 if data and not failed and all(s["rc"] == 0 for n in data for s in data[n]["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
