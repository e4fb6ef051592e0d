#!/usr/bin/env python3
"""Runs `make test`'s Molecule work in lanes side by side, beside one lane that builds images.

  scripts/test_lanes.py LANES

What to run comes from the environment the Makefile exports:
  ACC_AIRFLOW_VERSIONS     the matrix, paired in order: `molecule test -s default` once per pair,
                           the first version on acc-worker-1, the second on acc-worker-2
  ACC_SCENARIOS            every other scenario, run on Airflow 3.3.2
  ACC_RESTART_PROOF_VERSIONS
                           pairs holding one of these run the graceful-restart and rollback proofs

Most scenarios spend much of their time waiting (for a worker to start, a task to end, a drain),
so more lanes than cores keep the cores busy. Each lane takes the next run from one queue:
scenarios and pairs alternate, each list in its own order, so the longest scenarios and the
pairs whose images are built first start first. A run whose image is still being built waits
for it (scripts/build-images.sh holds a lock). After a failed run no further run starts; those
under way finish, and the exit status is 1."""
import os
import queue
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


def pairs(versions):
    """The matrix two by two; an odd one out runs on both workers."""
    return [(versions[i], (versions[i + 1:i + 2] or versions[i:i + 1])[0]) for i in range(0, len(versions), 2)]


def runs(versions, scenarios, proof_versions):
    """Every Molecule run as (label, environment, command), in the order the lanes take them."""
    matrix = []
    for first, second in pairs(versions):
        env = {"ACC_AIRFLOW_VERSIONS": "%s %s" % (first, second), "ACC_AIRFLOW_VERSION": first,
               "ACC_AIRFLOW_VERSION_2": second,
               "ACC_RESTART_PROOFS": str(bool({first, second} & set(proof_versions))).lower(),
               # The record's input-change cases need the celery provider of 3.3.2 on worker 1.
               "ACC_RECORD_CASES": str(first == "3.3.2").lower()}
        matrix.append(("default %s+%s" % (first, second), env, "default"))
    others = [(name, {"ACC_AIRFLOW_VERSIONS": "3.3.2"}, name) for name in scenarios]
    order = []
    for i in range(max(len(matrix), len(others))):
        order += others[i:i + 1] + matrix[i:i + 1]
    return order


def shell(command, env):
    return subprocess.call(["bash", "-o", "pipefail", "-c", command], env=dict(os.environ, **env), cwd=os.path.dirname(HERE))


def build_images(versions, failed):
    for version in versions:
        if failed.is_set():
            return
        if shell("scripts/build-images.sh 2>&1 | sed -u 's/^/[images] /'", {"ACC_AIRFLOW_VERSIONS": version}):
            failed.set()


def lane(todo, failed):
    while not failed.is_set():
        try:
            label, env, scenario = todo.get_nowait()
        except queue.Empty:
            return
        print("== %s starts" % label, flush=True)
        # The images this run needs: at once if current, else after the build under way.
        command = ("scripts/build-images.sh 2>&1 | sed -u 's/^/[%s] /' && molecule test -s %s 2>&1 | scripts/timelog.py '%s'"
                   % (label, scenario, label))
        rc = shell(command, env)
        print("== %s %s" % (label, "passed" if rc == 0 else "FAILED (rc %d)" % rc), flush=True)
        if rc:
            failed.set()


def main(lanes):
    versions = os.environ.get("ACC_AIRFLOW_VERSIONS", "").split()
    scenarios = os.environ.get("ACC_SCENARIOS", "").split()
    proof_versions = os.environ.get("ACC_RESTART_PROOF_VERSIONS", "").split()
    todo = queue.Queue()
    for run in runs(versions, scenarios, proof_versions):
        todo.put(run)
    failed = threading.Event()
    threads = [threading.Thread(target=build_images, args=(versions, failed))]
    threads += [threading.Thread(target=lane, args=(todo, failed)) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 1 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
