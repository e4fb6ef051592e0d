"""Starts ansible-playbook, watches its output, and kills it with SIGKILL (no handler, no
cleanup, as when a control node dies) as soon as the named task (or handler task) starts. Prints one JSON line:
whether it was killed there, and the output up to then.

  kill_after_writes.py TASK_NAME ANSIBLE_PLAYBOOK_ARGS..."""
import json
import os
import signal
import subprocess
import sys
import time

TIMEOUT = 300


def main(task, *argv):
    proc = subprocess.Popen(["ansible-playbook", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen, killed, deadline = [], False, time.monotonic() + TIMEOUT
    for line in proc.stdout:
        seen.append(line)
        if ("TASK [" in line or "HANDLER [" in line) and task in line:
            # The whole process group: ansible-playbook's forks die with it.
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        if time.monotonic() > deadline:
            break
    if not killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    print(json.dumps({"killed": killed, "returncode": proc.returncode, "output": "".join(seen)[-3000:]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
