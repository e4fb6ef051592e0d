#!/usr/bin/env python3
"""Does Celery's soft shutdown help an Airflow task whose worker is restarted mid-task?

Brings up two systemd containers on the network acc-soft-net: acc-soft-services (acc-services
image; Redis only, the broker and result backend) and acc-soft-airflow (acc-worker image,
Airflow 3.3.2, Celery 5.6.3), which runs the whole Airflow as systemd units: airflow-api
(api-server, the execution API), airflow-scheduler, airflow-dag-processor (SQLite metadata DB)
and airflow-worker (`airflow celery worker`, concurrency 1), the worker unit as the role's
drop-in makes it: KillMode=mixed, TimeoutStopSec=--stop-timeout. The scheduler's
[scheduler] task_instance_heartbeat_timeout is --heartbeat-timeout.

Each case triggers a DAG with one task (`sleep --task-seconds`, BashOperator or
PythonOperator, retries 0 or 1 with a 10 s retry_delay) and, once it has run --run-before
seconds, restarts the worker as the role does (`systemctl restart airflow-worker`) with:

  A  today's unit: SIGTERM (warm shutdown), systemd's SIGKILL after TimeoutStopSec;
  B  soft shutdown: REMAP_SIGTERM=SIGQUIT in the unit and worker_soft_shutdown_timeout
     --soft-timeout (below TimeoutStopSec) through [celery] extra_celery_config, so SIGTERM
     starts a cold shutdown that cancels the unacknowledged request and gives it back to Redis.

It then follows, every second until the task instance is final, a new try runs or --observe
seconds pass: the task instance's try and state (the metadata DB), the broker's queue and
unacked lengths, and the journals of the worker, the execution API and the scheduler. Prints a
table per case (seconds from the restart) and the key log lines; the whole journals go to
--log-dir.

  .venv/bin/python benchmarks/soft_shutdown.py
  .venv/bin/python benchmarks/soft_shutdown.py --cases A-bash-r0,B-bash-r0

Own container names (acc-soft-*), label and network (acc-soft-net); removed at the end, also
on failure (--keep leaves them up).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

NET = "acc-soft-net"
LABEL = "acc-soft"
SERVICES = "acc-soft-services"
AIRFLOW = "acc-soft-airflow"
VENV = "/opt/airflow/venv"
HOME = "/home/airflow/airflow"
DB = HOME + "/airflow.db"
SYSTEMD = ["--pull", "never", "--label", LABEL, "--network", NET, "--cgroupns", "host", "--cap-add", "SYS_ADMIN",
           "--security-opt", "seccomp=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
           "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"]
CASES = ("A-bash-r0", "B-bash-r0", "B-python-r0", "A-bash-r1", "B-bash-r1")
UNITS = {"api": "api-server --port 8080", "scheduler": "scheduler", "dag-processor": "dag-processor",
         "worker": "celery worker --queues default --concurrency 1"}
# The lines worth showing, by unit: a regex each.
KEY_LINES = {
    "worker": r"[Ss]hutdown \(|Soft Shutdown|Restoring|ready\.|Executing workload|already running|forwarding|Process exited|"
              r"SIGKILL|timed out|Stopping|Stopped|Started|Deactivated|WorkerLost|ERROR|Error",
    "api": r"status_code=(?!20)\d{3}|Cannot start",
    "scheduler": r"without a heartbeat|Failing \d+ TIs|finished \(failed\)|reported that the task instance|Marking task as|retry",
}
# The summary's rows: (label, unit, regex); the first match after the restart, its seconds.
EVENTS = (
    ("soft shutdown begins", "worker", r"Initiating Soft Shutdown"),
    ("cold shutdown", "worker", r"Cold shutdown \(MainProcess\)"),
    ("message given back to Redis", "worker", r"Restoring \d+ unacknowledged"),
    ("systemd SIGKILL", "worker", r"with signal SIGKILL"),
    ("worker stopped", "worker", r"Stopped airflow-worker"),
    ("worker ready again", "worker", r"celery@\S+ ready\."),
    ("message delivered again", "worker", r"\[{id}\] Executing workload"),
    ("new try's message", "worker", r"\[(?!{id})\S+\] Executing workload"),
    ("execution API 409 on /run", "api", r"/run query= status_code=409"),
    ("worker ignores redelivery", "worker", r"already running elsewhere"),
    ("scheduler: no heartbeat", "scheduler", r"without a heartbeat"),
)
POLL = r"""
import json, sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
row = c.execute("select try_number, state, hostname, pid from task_instance where dag_id=?", (sys.argv[2],)).fetchone()
print(json.dumps(row))
"""


def sh(args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def dexec(name, *cmd, check=True, user=None, stdin=None):
    pre = ["runuser", "-u", user, "--"] if user else []
    return sh(["docker", "exec", "-i", name, *pre, *cmd], check=check, input=stdin)


def put(name, path, text):
    dexec(name, "sh", "-c", "cat > %s" % path, stdin=text)


def cleanup():
    ids = sh(["docker", "ps", "-aq", "--filter", "label=" + LABEL]).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids], check=False)
    sh(["docker", "network", "rm", NET], check=False)


def wait(what, probe, timeout, step=1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = probe()
        if got:
            return got
        time.sleep(step)
    raise RuntimeError("timed out after %d s waiting for %s" % (timeout, what))


def journal(unit, since):
    """[(epoch seconds, message)] of a unit's journal since `since` (epoch seconds)."""
    out = dexec(AIRFLOW, "journalctl", "-u", "airflow-" + unit, "-o", "json", "--no-pager", "--since", "@%d" % int(since)).stdout
    entries = []
    for line in out.splitlines():
        e = json.loads(line)
        msg = e.get("MESSAGE") or ""
        if isinstance(msg, list):
            msg = bytes(msg).decode("utf-8", "replace")
        entries.append((int(e["__REALTIME_TIMESTAMP"]) / 1e6, msg))
    return entries


def env_file(args):
    secret = "acc-soft-" + "0123456789abcdef" * 4
    env = {
        "AIRFLOW_HOME": HOME, "PATH": VENV + "/bin:/usr/local/bin:/usr/bin:/bin",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": HOME + "/dags", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://localhost:8080/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:///" + DB,
        "AIRFLOW__CELERY__BROKER_URL": "redis://%s:6379/0" % SERVICES,
        "AIRFLOW__CELERY__RESULT_BACKEND": "redis://%s:6379/1" % SERVICES,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret, "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__CORE__INTERNAL_API_SECRET_KEY": secret, "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10", "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(args.heartbeat_timeout),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
    return "".join("%s=%s\n" % kv for kv in env.items())


def dag_file(args):
    lines = ["import datetime", "from airflow.sdk import DAG",
             "from airflow.providers.standard.operators.bash import BashOperator",
             "from airflow.providers.standard.operators.python import PythonOperator", "", "",
             "def nap():", "    import time", "    time.sleep(%d)" % args.task_seconds, ""]
    for case in CASES:
        _, op, r = case.split("-")
        task = ('BashOperator(task_id="nap", bash_command="sleep %d"' % args.task_seconds if op == "bash"
                else 'PythonOperator(task_id="nap", python_callable=nap')
        lines += ['with DAG("%s", schedule=None, start_date=datetime.datetime(2024, 1, 1)):' % dag_id(case),
                  "    %s, retries=%s, retry_delay=datetime.timedelta(seconds=10))" % (task, r[1])]
    return "\n".join(lines) + "\n"


def dag_id(case):
    return "soft_" + case.replace("-", "_").lower()


def bring_up(args):
    sh(["docker", "network", "create", "--label", LABEL, NET])
    sh(["docker", "run", "-d", "--name", SERVICES, "--hostname", SERVICES, *SYSTEMD, "acc-services:bookworm", "/lib/systemd/systemd"])
    sh(["docker", "run", "-d", "--name", AIRFLOW, "--hostname", AIRFLOW, *SYSTEMD, "acc-worker:airflow-3.3.2", "/lib/systemd/systemd"])
    for name in (SERVICES, AIRFLOW):
        wait(name + "'s systemd", lambda: dexec(name, "systemctl", "is-system-running", check=False).stdout.strip()
             in ("running", "degraded"), 120, 0.5)
    # Redis only (as molecule/shared/prepare.yml: Debian's sandboxing fails in these containers).
    dexec(SERVICES, "sh", "-c", "systemctl stop mariadb postgresql rabbitmq-server 2>/dev/null; "
          "mkdir -p /etc/systemd/system/redis-server.service.d && "
          "printf '[Service]\\nPrivateUsers=false\\n' > /etc/systemd/system/redis-server.service.d/container.conf && "
          "sed -i -e 's/^bind .*/bind 0.0.0.0/' -e 's/^protected-mode .*/protected-mode no/' /etc/redis/redis.conf && "
          "systemctl daemon-reload && systemctl restart redis-server", check=False)
    wait("redis", lambda: dexec(SERVICES, "redis-cli", "ping", check=False).stdout.strip() == "PONG", 60)
    put(AIRFLOW, "/etc/default/airflow", env_file(args))
    dexec(AIRFLOW, "mkdir", "-p", HOME + "/dags", user="airflow")
    put(AIRFLOW, HOME + "/dags/soft_shutdown.py", dag_file(args))
    for unit, command in UNITS.items():
        stop = "KillMode=mixed\nTimeoutStopSec=%d\n" % args.stop_timeout if unit == "worker" else ""
        put(AIRFLOW, "/etc/systemd/system/airflow-%s.service" % unit,
            "[Unit]\nDescription=Airflow %s\n\n[Service]\nUser=airflow\nGroup=airflow\nEnvironmentFile=/etc/default/airflow\n"
            "ExecStart=%s/bin/airflow %s\n%sRestart=on-failure\n" % (unit, VENV, command, stop))
    dexec(AIRFLOW, "sh", "-c", "set -a; . /etc/default/airflow; %s/bin/airflow db migrate" % VENV, user="airflow")
    dexec(AIRFLOW, "systemctl", "daemon-reload")
    dexec(AIRFLOW, "systemctl", "start", "airflow-api", "airflow-scheduler", "airflow-dag-processor")
    count = "import sqlite3; print(sqlite3.connect('%s', timeout=10).execute('select count(*) from dag').fetchone()[0])" % DB
    wait("the DAGs in the metadata DB", lambda: dexec(AIRFLOW, "python3", "-c", count, check=False).stdout.strip() == str(len(CASES)), 300, 3)
    wait("the execution API", lambda: dexec(AIRFLOW, "python3", "-c", "import urllib.request as u; "
                                            "u.urlopen('http://localhost:8080/api/v2/monitor/health')", check=False).returncode == 0, 300, 3)


def start_worker(variant, args):
    """(Re)starts the worker unit with the variant's drop-in; the start time."""
    dropin = "/etc/systemd/system/airflow-worker.service.d"
    dexec(AIRFLOW, "sh", "-c", "systemctl stop airflow-worker; rm -rf %s; mkdir -p %s" % (dropin, dropin))
    if variant == "B":
        put(AIRFLOW, dropin + "/soft.conf", "[Service]\nEnvironment=REMAP_SIGTERM=SIGQUIT\n"
            "Environment='AIRFLOW__CELERY__EXTRA_CELERY_CONFIG={\"worker_soft_shutdown_timeout\": %d}'\n" % args.soft_timeout)
    # An earlier case's message, given back or waiting in `unacked`, would come back here.
    dexec(SERVICES, "redis-cli", "-n", "0", "flushdb")
    dexec(AIRFLOW, "systemctl", "daemon-reload")
    since = time.time()
    dexec(AIRFLOW, "systemctl", "start", "airflow-worker")
    wait("the worker's ready.", lambda: any(re.search(r"celery@\S+ ready\.", m) for _, m in journal("worker", since - 1)), 240, 2)


def sample(dag):
    row = json.loads(dexec(AIRFLOW, "python3", "-c", POLL, DB, dag, check=False).stdout or "null")
    redis = dexec(SERVICES, "redis-cli", "-n", "0", "eval", "return {redis.call('llen','default'), redis.call('hlen','unacked')}", "0",
                  check=False).stdout.split()
    return row, redis


def run_case(case, args, log_dir):
    variant, _, retries = case.split("-")
    dag = dag_id(case)
    start_worker(variant, args)
    since = time.time()
    dexec(AIRFLOW, "sh", "-c", "set -a; . /etc/default/airflow; airflow dags trigger %s" % dag, user="airflow")
    wait(dag + " running", lambda: (sample(dag)[0] or [0, None])[1] == "running", 300, 1)
    time.sleep(args.run_before)
    t0 = time.time()
    restart = subprocess.Popen(["docker", "exec", AIRFLOW, "systemctl", "restart", "airflow-worker"])
    timeline, last, first_try = [], None, sample(dag)[0][0]
    while time.time() - t0 < args.observe:
        row, redis = sample(dag)
        now = (row[0], row[1], "queue %s unacked %s" % tuple(redis[:2]) if len(redis) >= 2 else "redis ?")
        if now != last:
            timeline.append((time.time() - t0, "try %s %s" % now[:2], now[2]))
            last = now
        if row[1] in ("success", "failed") or (row[0] > first_try and row[1] == "running"):
            break
        time.sleep(1)
    restart.wait()
    logs = {unit: journal(unit, since) for unit in ("worker", "api", "scheduler")}
    # The Celery task id of the first delivery: a redelivery has the same.
    first_id = re.search(r"\[(\S+)\] Executing workload", "\n".join(m for _, m in logs["worker"])).group(1)
    for unit, entries in logs.items():
        (log_dir / ("%s-%s.log" % (case, unit))).write_text("".join("%+8.1f %s\n" % (at - t0, m) for at, m in entries))
    key = sorted((at - t0, unit, m) for unit, entries in logs.items() for at, m in entries
                 if re.search(KEY_LINES[unit], m) and (unit != "scheduler" or dag in m))
    events = {}
    for label, unit, regex in EVENTS:
        found = [at - t0 for at, m in logs[unit] if at >= t0 and re.search(regex.format(id=first_id), m) and (unit != "scheduler" or dag in m)]
        events[label] = "%+.1f" % found[0] if found else "-"
    for label, test in (("TI up_for_retry", lambda t: t.endswith(" up_for_retry")), ("TI failed", lambda t: t.endswith(" failed")),
                        ("TI success", lambda t: t.endswith(" success")),
                        ("new try running", lambda t: t.endswith(" running") and t != "try %s running" % first_try)):
        found = [at for at, ti, _ in timeline if test(ti)]
        events[label] = "%+.1f" % found[0] if found else "-"
    events["broker at the end"] = last[2]
    return {"case": case, "timeline": timeline, "key": key, "events": events}


def report(result):
    print("\n== %s (seconds from `systemctl restart airflow-worker`)" % result["case"])
    print("%8s  %-22s %s" % ("seconds", "task instance", "broker (queue default, unacked)"))
    for at, ti, broker in result["timeline"]:
        print("%+8.1f  %-22s %s" % (at, ti, broker))
    print("key log lines:")
    for at, unit, m in result["key"]:
        print("%+8.1f  %-9s %s" % (at, unit, m[:220]))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from %s" % ", ".join(CASES))
    parser.add_argument("--task-seconds", type=int, default=300)
    parser.add_argument("--run-before", type=int, default=20, help="seconds the task runs before the restart")
    parser.add_argument("--stop-timeout", type=int, default=20, help="the worker unit's TimeoutStopSec")
    parser.add_argument("--soft-timeout", type=int, default=10, help="worker_soft_shutdown_timeout in B")
    parser.add_argument("--heartbeat-timeout", type=int, default=60, help="[scheduler] task_instance_heartbeat_timeout")
    parser.add_argument("--observe", type=int, default=300, help="seconds to follow a case after the restart")
    parser.add_argument("--log-dir", default="/tmp/soft_shutdown_logs")
    parser.add_argument("--keep", action="store_true", help="leave the containers up")
    args = parser.parse_args()
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    cases = args.cases.split(",")
    results = []
    cleanup()
    try:
        started = time.monotonic()
        bring_up(args)
        print("up in %.0f s; task sleep %d s, restart after %d s of run, TimeoutStopSec %d, soft timeout %d, heartbeat timeout %d"
              % (time.monotonic() - started, args.task_seconds, args.run_before, args.stop_timeout, args.soft_timeout,
                 args.heartbeat_timeout))
        for case in cases:
            results.append(run_case(case, args, log_dir))
            report(results[-1])
    finally:
        if not args.keep:
            cleanup()
    if results:
        print("\nSeconds from the restart, per case (A: warm shutdown, then SIGKILL; B: soft shutdown, cold shutdown):")
        print("%-28s" % "" + "".join("%13s" % r["case"] for r in results))
        for label in list(results[0]["events"])[:-1]:
            print("%-28s" % label + "".join("%13s" % r["events"][label] for r in results))
        print("(broker at the end: %s)" % "; ".join("%s %s" % (r["case"], r["events"]["broker at the end"]) for r in results))


if __name__ == "__main__":
    main()
