#!/usr/bin/env python3
"""Compares candidate Celery settings on the running demo fleet (`make demo` first) and
prints one table: stale-connection warnings after idle gaps, results lost, and result-store
throughput on a busy worker relative to Airflow's defaults.

    .venv/bin/python benchmarks/stale_settings.py [--runs 3] [--burst 300]

Each candidate is rolled out with playbooks/site.yml (the role's own defaults switched off,
so the candidate is all the module adds to Airflow's DEFAULT_CELERY_CONFIG). Traffic goes
only to the fleet's containers."""
import argparse
import concurrent.futures
import json
import pathlib
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
             "airflow_celery_config_serial": "100%"}
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
    args = parser.parse_args()
    # Not /tmp: it is a tmpfs in the fleet's containers, which `docker cp` cannot see.
    for worker in WORKERS:
        sh("docker", "cp", str(ROOT / "molecule/shared/files/worker_celery.py"), worker + ":/opt/airflow/")
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as inventory:
        inventory.write(json.dumps({"airflow_workers": {
            "hosts": {w: {"ansible_connection": "community.docker.docker"} for w in WORKERS}}}))
        inventory.flush()
        rows = []
        for name, settings in CANDIDATES:
            print("measuring: %s" % name, file=sys.stderr)
            roll_out(inventory.name, settings)
            # Both workers idle side by side: a candidate's warnings are summed over them.
            with concurrent.futures.ThreadPoolExecutor(len(WORKERS)) as pool:
                idle = list(pool.map(idle_traffic, WORKERS))
            bursts = []
            for _ in range(args.runs):
                bursts.append(json.loads(on_worker(WORKERS[0], "/opt/airflow/worker_celery.py", "burst", WORKERS[0],
                                                   str(args.burst)).splitlines()[-1]))
                time.sleep(1)
            rows.append((name, sum(i["warnings"] for i in idle), sum(i["sent"] - i["stored"] for i in idle),
                         sum(b["sent"] - b["stored"] for b in bursts),
                         statistics.median(b["per_second"] for b in bursts)))
    base = rows[0][4]
    print("| Celery settings | stale warnings after idle (%d gaps x %d workers) | idle results lost "
          "| burst results lost | tasks/s (median of %d x %d) | vs Airflow's defaults |"
          % (IDLE_TASKS - 1, len(WORKERS), args.runs, args.burst))
    print("|---|---|---|---|---|---|")
    for name, warnings, lost, burst_lost, rate in rows:
        print("| %s | %d | %d | %d | %.1f | %.2f |" % (name, warnings, lost, burst_lost, rate, rate / base))


if __name__ == "__main__":
    main()
