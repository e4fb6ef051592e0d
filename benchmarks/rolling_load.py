#!/usr/bin/env python3
"""A rolling change under load: does a rollout that restarts every worker lose or repeat a task?

Brings up 3 systemd worker containers (acc-worker image, Airflow 3.3.2; worker_concurrency 2
from molecule/shared/prepare.yml; each worker consumes the shared queue `default`) and a
services container (MariaDB result backend, Redis broker), prepares them with
molecule/shared/prepare.yml, and applies the role once so the workers load acc_test_tasks.
Then:

  0. the floor: `ansible -m ansible.builtin.ping` over the workers (median of 3);
  1. task traffic from worker 1 (benchmarks/rolling_load_traffic.py, the worker's own Celery
     app): acc.sleep_count(--task-seconds) to `default` at a steady rate, by default 2.5 times
     what one worker serves (2 slots / mean task seconds): more than two workers serve, so the
     queue grows while a worker restarts, and less than three, so it drains between restarts.
     With --task-seconds-max each task runs a time drawn evenly between the two (--seed);
  2. after --warmup seconds, playbooks/site.yml with a changed setting (result_expires) and the
     playbook's default serial 1: every worker is restarted, one at a time;
  3. the traffic goes on --tail seconds after the rollout, stops, and waits up to --drain
     seconds for every result;
  4. counts: sent; succeeded and failed (the result backend's final state); missing (no final
     state after the drain); ran twice (tasks that noted more than one execution in Redis);
     left in the broker (messages queued or unacknowledged 5 s after the drain: Redis delivers
     an unacknowledged one again after the visibility_timeout, a run twice to come).

Per worker: the wall seconds of its batch and of the restart handler (restart and ping), from
the fleet_count callback; from its journal, when the stop began, how long the stop took (warm
shutdown: running tasks, then Airflow's own), how long the worker consumed nothing (stop begun
to `celery@... ready.`), the messages the warm shutdown gave back to the broker and the
processes systemd killed; from the tasks' own notes, the tasks running when the stop began and
the executions it served.

Exits 0 only if the rollout succeeded, each worker restarted exactly once with no two down at
the same time, every task was sent and succeeded once, and failed, missing, ran twice, left
in the broker and processes killed by systemd are 0.

  .venv/bin/python benchmarks/rolling_load.py
  # tasks longer than the stop timeout: the drain waits for them (must exit 0)
  .venv/bin/python benchmarks/rolling_load.py --stop-timeout 10 --task-seconds 45
  # negative control, the same without the drain (must exit 1):
  .venv/bin/python benchmarks/rolling_load.py --stop-timeout 10 --task-seconds 45 --no-role-drain
  # steady load of tasks from 30 to 90 s, each longer than the stop timeout
  .venv/bin/python benchmarks/rolling_load.py --stop-timeout 10 --task-seconds 30 --task-seconds-max 90 --warmup 120

Own container names (acc-roll-*), label and network (acc-roll-net); removed at the end, also
on failure (--keep leaves them up).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet import HOME, ROOT, VENV, Fleet, Runner, sh

WORKERS = 3
# [celery] worker_concurrency in molecule/shared/prepare.yml.
CONCURRENCY = 2
QUEUE = "default"
STOP_FILE = "/tmp/acc-roll-stop"
# Not /tmp: it is a tmpfs in the containers, which `docker cp` cannot see.
TRAFFIC = "/opt/airflow/rolling_load_traffic.py"
SETTINGS = {"include": ["acc_test_tasks"]}
CHANGE = {"result_expires": 7200}
# The role's flush_handlers task: its handler restarts the worker and waits for its ping.
FLUSH_TASK = "Restart the worker now if anything changed"
FIRST_TASK = "Start this application of the role with no restart done or cancelled"
LAST_TASK = "Report what the worker runs with"


def journal(worker, since):
    """(epoch seconds, from systemd, message) of the worker unit's journal since `since`."""
    out = sh(["docker", "exec", worker, "journalctl", "-u", "airflow-worker", "-o", "json", "--no-pager",
              "--since", "@%d" % int(since)]).stdout
    entries = []
    for line in out.splitlines():
        entry = json.loads(line)
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald's form for bytes that are not UTF-8
            message = bytes(message).decode("utf-8", "replace")
        entries.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, entry.get("SYSLOG_IDENTIFIER") == "systemd",
                        message or ""))
    return entries


def restarts(entries):
    """Each stop of the unit in the journal: when it began, ended, and the worker was ready again."""
    out = []
    for at, systemd, message in entries:
        if systemd and message.startswith("Stopping "):
            out.append({"stop": at, "stopped": None, "ready": None, "restored": 0, "killed": 0})
        elif out and out[-1]["stopped"] is None and systemd and message.startswith("Stopped "):
            out[-1]["stopped"] = at
        elif out and out[-1]["ready"] is None and re.search(r"celery@\S+ ready\.", message):
            out[-1]["ready"] = at
        elif out and out[-1]["stopped"] is None:
            restored = re.search(r"Restoring (\d+) unacknowledged message", message)
            if restored:
                out[-1]["restored"] += int(restored.group(1))
            # systemd: "State 'stop-sigterm' timed out. Killing.", then "Killing process N ..."
            if systemd and "Killing process" in message:
                out[-1]["killed"] += 1
    return out


def start_traffic(worker, args, log_dir):
    sh(["docker", "cp", str(ROOT / "benchmarks" / "rolling_load_traffic.py"), worker + ":" + TRAFFIC])
    # The traffic script finds the worker's Celery app through the tests' driver script.
    sh(["docker", "cp", str(ROOT / "molecule" / "shared" / "files" / "worker_celery.py"),
        worker + ":" + os.path.join(os.path.dirname(TRAFFIC), "worker_celery.py")])
    sh(["docker", "exec", worker, "rm", "-f", STOP_FILE])
    err = open(log_dir / "traffic.log", "w")
    proc = subprocess.Popen(
        ["docker", "exec", worker, "runuser", "-u", "airflow", "--", "env", "AIRFLOW_HOME=" + HOME,
         VENV + "/bin/python", TRAFFIC, QUEUE, str(args.task_seconds), str(args.rate), STOP_FILE, str(args.drain),
         str(args.task_seconds_max), str(args.seed)],
        stdout=subprocess.PIPE, stderr=err, text=True)
    # It imports Airflow first: the warm-up counts from its first task.
    for _ in range(240):
        if "sending" in (log_dir / "traffic.log").read_text() or proc.poll() is not None:
            break
        time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError("the traffic stopped at once, see %s" % (log_dir / "traffic.log"))
    return proc, err


def others(fleet):
    """Containers on this Docker host that are not this fleet's."""
    return len(sh(["docker", "ps", "-q", "--filter", "status=running"]).stdout.split()) - len(
        sh(["docker", "ps", "-q", "--filter", "label=" + fleet.label]).stdout.split())


def per_host_tasks(tasks, hosts):
    """Per host (serial 1: one batch per host, in inventory order): the batch's wall seconds
    and the restart handler's (restart and ping), from the fleet_count callback."""
    batches = [i for i, t in enumerate(tasks) if t["name"].endswith(FIRST_TASK)] + [len(tasks)]
    out = {}
    for host, begin, end in zip(hosts, batches, batches[1:]):
        batch = tasks[begin:end]
        last = [t for t in batch if t["name"].endswith(LAST_TASK)] or batch
        out[host] = {"batch": last[-1]["at"] + last[-1]["seconds"] - batch[0]["at"],
                     "restart": sum(t["seconds"] for t in batch if t["name"].endswith(FLUSH_TASK))}
    return out


def count(traffic):
    """The proof's counts from the traffic's own record."""
    states = traffic["states"]
    sent = [task_id for task_id, _, _ in traffic["sent"]]
    known = set(sent)
    runs = {}
    for task_id, host, at in traffic["runs"]:
        runs.setdefault(task_id, []).append((host, at))
    return {
        "sent": len(sent),
        "succeeded": sum(states.get(t) == "SUCCESS" for t in sent),
        "failed": sum(states.get(t) in ("FAILURE", "REVOKED") for t in sent),
        "missing": sum(states.get(t) not in ("SUCCESS", "FAILURE", "REVOKED") for t in sent),
        "ran_twice": sum(len(runs.get(t, [])) > 1 for t in sent),
        "never_started": sum(t not in runs for t in sent),
        "executions": len(traffic["runs"]),
        "unknown_executions": sum(t not in known for t in runs),
    }


def run(args, fleet, log_dir):
    hosts = fleet.workers(WORKERS)
    inv_path = log_dir / "inventory.yml"
    fleet.write_inventory(inv_path, WORKERS)
    info = {"started": time.time()}
    stamp = time.monotonic()
    fleet.start(WORKERS)
    runner = Runner(str(inv_path), 5, log_dir)
    prep = runner.run("prepare", ["ansible-playbook", "-i", str(inv_path), "molecule/shared/prepare.yml"])
    if prep["rc"]:
        raise RuntimeError("prepare failed, see %s" % (log_dir / "prepare.log"))
    fleet.wait_ready(hosts)
    site = ["ansible-playbook", "-i", str(inv_path), "playbooks/site.yml"]
    base = runner.run("baseline", site + ["-e", json.dumps({"airflow_celery_config_settings": SETTINGS,
                                                            "airflow_celery_config_serial": "100%"})])
    if base["rc"]:
        raise RuntimeError("the baseline run failed, see %s" % (log_dir / "baseline.log"))
    info["setup_seconds"] = time.monotonic() - stamp
    pings = [runner.run("ping%d" % i, ["ansible", "-i", str(inv_path), "airflow_workers", "-m", "ansible.builtin.ping"])
             for i in range(3)]
    info["ping_seconds"] = statistics.median(r["seconds"] for r in pings)

    change = {"airflow_celery_config_settings": dict(SETTINGS, **CHANGE)}
    if args.stop_timeout is not None:
        change["airflow_celery_config_stop_timeout"] = args.stop_timeout
    if args.no_role_drain:
        change["airflow_celery_config_drain"] = False
    info["change"] = change
    proc, err = start_traffic(hosts[0], args, log_dir)
    try:
        time.sleep(args.warmup)
        info["rollout_start"] = time.time()
        info["load_before"] = os.getloadavg()[0]
        info["others"] = others(fleet)
        rollout = runner.run("rollout", site + ["-e", json.dumps(change)])
        info["rollout_end"] = time.time()
        info["load_after"] = os.getloadavg()[0]
        info["rollout"] = {k: v for k, v in rollout.items() if k != "output"}
        time.sleep(args.tail)
    finally:
        sh(["docker", "exec", hosts[0], "touch", STOP_FILE], check=False)
        out, _ = proc.communicate(timeout=args.drain + 300)
        err.close()
    if proc.returncode:
        raise RuntimeError("the traffic failed, see %s" % (log_dir / "traffic.log"))
    traffic = json.loads(out.splitlines()[-1])
    (log_dir / "traffic.json").write_text(json.dumps(traffic))
    info["traffic"] = {k: traffic[k] for k in ("started", "stopped", "drained", "rate", "task_seconds")}
    info["left"] = traffic["left"]
    info["counts"] = count(traffic)
    info["errors"] = traffic["errors"]

    first_run = {}
    for task_id, _host, at in traffic["runs"]:
        first_run.setdefault(task_id, at)
    waits = [first_run[t] - sent for t, sent, _ in traffic["sent"] if t in first_run]
    duration_of = {t: seconds for t, _, seconds in traffic["sent"]}
    info["wait"] = {"median": statistics.median(waits) if waits else None, "max": max(waits, default=None)}
    info["queue_max"] = max((s[1] for s in traffic["samples"]), default=0)
    info["unacked_max"] = max((s[2] for s in traffic["samples"]), default=0)
    info["sent_during_rollout"] = sum(info["rollout_start"] <= sent <= info["rollout_end"] for _, sent, _ in traffic["sent"])

    timing = per_host_tasks(rollout["tasks"], hosts)
    info["hosts"] = {}
    for host in hosts:
        stops = restarts(journal(host, info["rollout_start"] - 1))
        entry = {"restarts": stops, **timing.get(host, {})}
        if stops:
            stop = stops[0]["stop"]
            entry["in_flight"] = sum(1 for t, h, at in traffic["runs"] if h == host and at <= stop < at + duration_of.get(t, 0))
        entry["executions"] = sum(1 for _, h, _ in traffic["runs"] if h == host)
        info["hosts"][host] = entry
        (log_dir / ("journal-%s.txt" % host)).write_text(
            sh(["docker", "exec", host, "journalctl", "-u", "airflow-worker", "-o", "short-iso-precise", "--no-pager",
                "--since", "@%d" % int(info["started"])], check=False).stdout)
    # The tasks that did not succeed: where they ran, and whether a stop began while they ran.
    stop_of = {h: e["restarts"][0]["stop"] for h, e in info["hosts"].items() if e["restarts"]}
    runs_of = {}
    for task_id, host, at in traffic["runs"]:
        runs_of.setdefault(task_id, []).append((host, at))
    info["not_succeeded"] = [
        {"id": task_id, "state": traffic["states"].get(task_id), "runs": runs_of.get(task_id, []),
         "cut_by_stop": any(h in stop_of and at <= stop_of[h] < at + duration_of[task_id] for h, at in runs_of.get(task_id, []))}
        for task_id, _, _ in traffic["sent"] if traffic["states"].get(task_id) != "SUCCESS"]
    info["killed"] = sum(r["killed"] for e in info["hosts"].values() for r in e["restarts"])
    windows = sorted((e["restarts"][0]["stop"], e["restarts"][0]["ready"] or float("inf"))
                     for e in info["hosts"].values() if len(e["restarts"]) == 1)
    info["one_at_a_time"] = (len(windows) == WORKERS
                             and all(a[1] <= b[0] for a, b in zip(windows, windows[1:])))
    info["each_restarted_once"] = all(len(e["restarts"]) == 1 and e["restarts"][0]["ready"]
                                      for e in info["hosts"].values())
    return info


def fmt(seconds):
    return "-" if seconds is None else "%.1f" % seconds


def print_report(info, args):
    c = info["counts"]
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1048576
    rollout = info["rollout"]
    print("\nRolling change under load: %d workers (Airflow %s, worker_concurrency %d, all on queue %s);"
          " %d cores, %.0f GiB RAM" % (WORKERS, args.version, CONCURRENCY, QUEUE, os.cpu_count(), mem))
    print("traffic: acc.sleep_count(%g to %g s, seed %d) at %.3f tasks/s (one worker serves %.3f/s, three %.3f/s);"
          " warm-up %g s, tail %g s, drain up to %g s" % (
              args.task_seconds, args.task_seconds_max, args.seed, args.rate, CONCURRENCY / args.task_seconds_mean,
              WORKERS * CONCURRENCY / args.task_seconds_mean, args.warmup, args.tail, args.drain))
    print("floor: ansible -m ansible.builtin.ping over the %d workers %.1f s (median of 3)" % (WORKERS, info["ping_seconds"]))
    print("rollout: playbooks/site.yml -e '%s' (serial 1): rc %d, %.1f s (%.0fx the floor); %d tasks sent during it" % (
        json.dumps(info["change"]), rollout["rc"], rollout["seconds"], rollout["seconds"] / info["ping_seconds"],
        info["sent_during_rollout"]))
    print("host load average (1 min) %.1f at the rollout's start, %.1f at its end; %d other containers running" % (
        info["load_before"], info["load_after"], info["others"]))
    left = info["left"]
    print("\n| sent | succeeded | failed | missing | ran twice | left in the broker (queued + unacknowledged) | killed |")
    print("|---|---|---|---|---|---|---|")
    print("| %d | %d | %d | %d | %d | %d | %d |" % (
        c["sent"], c["succeeded"], c["failed"], c["missing"], c["ran_twice"], left["queued"] + left["unacknowledged"],
        info["killed"]))
    print("\n| worker | batch s | restart + ping s | stop began (s into rollout) | stop took s"
          " | not consuming s | tasks running at stop | restored to queue | processes killed | executions |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for host, e in info["hosts"].items():
        r = e["restarts"][0] if e["restarts"] else {}
        stop = r.get("stop")
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            host, fmt(e.get("batch")), fmt(e.get("restart")),
            fmt(stop - info["rollout_start"] if stop else None),
            fmt(r["stopped"] - stop if stop and r.get("stopped") else None),
            fmt(r["ready"] - stop if stop and r.get("ready") else None),
            e.get("in_flight", "-"), r.get("restored", "-"), r.get("killed", "-"), e["executions"]))
    print("\nrestarts: %s; each worker once: %s; one at a time: %s" % (
        ", ".join("%s %d" % (h, len(e["restarts"])) for h, e in info["hosts"].items()),
        "yes" if info["each_restarted_once"] else "NO", "yes" if info["one_at_a_time"] else "NO"))
    print("executions %d (%d tasks never started); queue wait (sent to first start) median %s s, max %s s;"
          " queue length max %d, unacknowledged max %d (sampled each second); drain ended %.0f s after the"
          " traffic stopped" % (
              c["executions"], c["never_started"], fmt(info["wait"]["median"]), fmt(info["wait"]["max"]),
              info["queue_max"], info["unacked_max"], info["traffic"]["drained"] - info["traffic"]["stopped"]))
    lost = info["not_succeeded"]
    if lost:
        states = {}
        for task in lost:
            states[task["state"]] = states.get(task["state"], 0) + 1
        print("not succeeded: %d, states %s; %d of them were running on a worker when its stop began" % (
            len(lost), ", ".join("%s %d" % item for item in sorted(states.items())),
            sum(task["cut_by_stop"] for task in lost)))
    if left["queued"] or left["unacknowledged"]:
        print("left in the broker 5 s after the drain: %d queued, %d unacknowledged (delivered again after"
              " the broker's visibility_timeout)" % (left["queued"], left["unacknowledged"]))
    if info["errors"]:
        print("failures: %s" % "; ".join("%s %s" % item for item in sorted(info["errors"].items())[:5]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task-seconds", type=float, default=3, help="how long each task runs (default 3)")
    parser.add_argument("--task-seconds-max", type=float,
                        help="with it, each task runs a time drawn evenly from --task-seconds to this")
    parser.add_argument("--seed", type=int, help="seed of the task times (default: a random one, printed)")
    parser.add_argument("--rate", type=float, help="tasks sent a second (default: 2.5 x one worker's capacity)")
    parser.add_argument("--stop-timeout", type=int, help="airflow_celery_config_stop_timeout for the rollout"
                        " (default: the role's, 600)")
    parser.add_argument("--no-role-drain", action="store_true",
                        help="restart without draining the worker first (airflow_celery_config_drain: false)")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of traffic before the rollout (default 20)")
    parser.add_argument("--tail", type=float, default=20, help="seconds of traffic after the rollout (default 20)")
    parser.add_argument("--drain", type=float, default=240,
                        help="seconds to wait for the last results once the traffic stops (default 240)")
    parser.add_argument("--version", default="3.3.2", help="Airflow version of the acc-worker image (default 3.3.2)")
    parser.add_argument("--log-dir", help="where the runs' logs go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="leave the containers up")
    args = parser.parse_args()
    if args.task_seconds_max is None:
        args.task_seconds_max = args.task_seconds
    if args.task_seconds_max < args.task_seconds:
        parser.error("--task-seconds-max must not be below --task-seconds")
    if args.seed is None:
        args.seed = random.randrange(2 ** 32)
    args.task_seconds_mean = (args.task_seconds + args.task_seconds_max) / 2
    if args.rate is None:
        args.rate = 2.5 * CONCURRENCY / args.task_seconds_mean
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="rolling-load-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print("logs in %s" % log_dir, flush=True)
    fleet = Fleet("acc-roll", "acc-roll=rolling_load", args.version)
    start = time.monotonic()
    fleet.cleanup()
    try:
        info = run(args, fleet, log_dir)
    finally:
        if not args.keep:
            fleet.cleanup()
    info["wall_seconds"] = time.monotonic() - start
    (log_dir / "results.json").write_text(json.dumps(info, indent=1))
    print_report(info, args)
    print("\nbenchmark wall time %.0f s (fleet up, prepared and configured in %.0f s)" % (
        info["wall_seconds"], info["setup_seconds"]))
    c = info["counts"]
    ok = (info["rollout"]["rc"] == 0 and info["each_restarted_once"] and info["one_at_a_time"]
          and c["sent"] > 0 and c["succeeded"] == c["sent"] and c["failed"] == c["missing"] == c["ran_twice"] == 0
          and info["left"]["queued"] == info["left"]["unacknowledged"] == 0 and info["killed"] == 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
