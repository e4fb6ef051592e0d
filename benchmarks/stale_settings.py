#!/usr/bin/env python3
"""Compares candidate Celery settings on the running demo fleet (`make demo` first) and
prints one table: stale-connection warnings after idle gaps, results lost, and result-store
throughput on a busy worker relative to Airflow's defaults.

    .venv/bin/python benchmarks/stale_settings.py [--runs 3] [--burst 300] [--seed N]

Each candidate is rolled out with playbooks/site.yml (the role's own defaults and its
pool_recycle fitting switched off, so the candidate is all the module adds to Airflow's
DEFAULT_CELERY_CONFIG). Every run goes through all candidates in a new random order, so
drift over time (the result table grows) does not favour whichever runs first; the orders
are printed with the seed that makes them. Traffic goes only to the fleet's containers."""
import argparse
import concurrent.futures
import json
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKERS = ["acc-worker-1", "acc-worker-2"]
PYTHON = "/opt/airflow/venv/bin/python"
HOME = "/home/airflow/airflow"
# MariaDB's wait_timeout in the demo fleet is 5 s (molecule/default/molecule.yml).
IDLE_GAP, IDLE_TASKS = 7, 5
CANDIDATES = [
    ("Airflow's defaults", {}),
    ("database_short_lived_sessions", {"database_short_lived_sessions": True}),
    ("pool_pre_ping", {"database_engine_options": {"pool_pre_ping": True}}),
    ("pool_recycle=3 (< wait_timeout)", {"database_engine_options": {"pool_recycle": 3}}),
    ("pool_pre_ping + pool_recycle=1800", {"database_engine_options": {"pool_pre_ping": True, "pool_recycle": 1800}}),
    ("short_lived + pool_pre_ping", {"database_short_lived_sessions": True,
                                     "database_engine_options": {"pool_pre_ping": True}}),
]


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


def on_worker(worker, *args):
    return sh("docker", "exec", worker, "runuser", "-u", "airflow", "--", "env", "AIRFLOW_HOME=" + HOME,
              PYTHON, *args)


def roll_out(inventory, settings):
    extra = {"airflow_celery_config_default_settings": {}, "airflow_celery_config_settings": settings,
             "airflow_celery_config_fit_pool_recycle": False, "airflow_celery_config_serial": "100%"}
    sh(str(ROOT / ".venv/bin/ansible-playbook"), "-i", inventory, str(ROOT / "playbooks/site.yml"),
       "-e", json.dumps(extra), cwd=ROOT)


def idle_traffic(worker):
    since = sh("docker", "exec", worker, "date", "+%s").strip()
    counts = json.loads(on_worker(worker, "/opt/airflow/worker_celery.py", "traffic", worker, str(IDLE_TASKS), str(IDLE_GAP))
                        .splitlines()[-1])
    journal = sh("docker", "exec", worker, "journalctl", "-u", "airflow-worker", "-o", "cat", "--since", "@" + since)
    counts["warnings"] = journal.count("Failed operation _store_result")
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None, help="seed of the run orders (default: random)")
    args = parser.parse_args()
    seed = random.randrange(2 ** 32) if args.seed is None else args.seed
    rng = random.Random(seed)
    print("seed: %d" % seed, file=sys.stderr)
    # Not /tmp: it is a tmpfs in the fleet's containers, which `docker cp` cannot see.
    for worker in WORKERS:
        sh("docker", "cp", str(ROOT / "molecule/shared/files/worker_celery.py"), worker + ":/opt/airflow/")
    idle, bursts = {}, {name: [] for name, _ in CANDIDATES}
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as inventory:
        inventory.write(json.dumps({"airflow_workers": {
            "hosts": {w: {"ansible_connection": "community.docker.docker"} for w in WORKERS}}}))
        inventory.flush()
        for run in range(args.runs):
            order = list(CANDIDATES)
            rng.shuffle(order)
            print("run %d order: %s" % (run + 1, " | ".join(name for name, _ in order)), file=sys.stderr)
            for name, settings in order:
                roll_out(inventory.name, settings)
                if name not in idle:
                    # Both workers idle side by side: a candidate's warnings are summed over them.
                    with concurrent.futures.ThreadPoolExecutor(len(WORKERS)) as pool:
                        idle[name] = list(pool.map(idle_traffic, WORKERS))
                bursts[name].append(json.loads(on_worker(WORKERS[0], "/opt/airflow/worker_celery.py", "burst",
                                                         WORKERS[0], str(args.burst)).splitlines()[-1]))
                time.sleep(1)
    rows = [(name, sum(i["warnings"] for i in idle[name]), sum(i["sent"] - i["stored"] for i in idle[name]),
             sum(b["sent"] - b["stored"] for b in bursts[name]),
             statistics.median(b["per_second"] for b in bursts[name])) for name, _ in CANDIDATES]
    base = rows[0][4]
    print("| Celery settings | stale warnings after idle (%d gaps x %d workers) | idle results lost "
          "| burst results lost | tasks/s (median of %d x %d, random order) | median vs Airflow's defaults |"
          % (IDLE_TASKS - 1, len(WORKERS), args.runs, args.burst))
    print("|---|---|---|---|---|---|")
    for name, warnings, lost, burst_lost, rate in rows:
        print("| %s | %d | %d | %d | %.1f | %.2f |" % (name, warnings, lost, burst_lost, rate, rate / base))


if __name__ == "__main__":
    main()
