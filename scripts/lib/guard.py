#!/usr/bin/python3
"""Run a long-lived program and end its process group once the process that started it is gone.

  guard.py OWNER_PID COMMAND [ARGS...]

The harness starts servers (tracker, seeders) in their own process group so that it can end
them all at once; if the harness itself is killed without a chance to clean up, this guard
notices that OWNER_PID no longer exists and kills the group. SIGHUP, SIGINT and SIGTERM are
passed on to the program. Exits with the program's exit code.
"""

import os
import signal
import sys
import time

POLL_S = 0.25


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    owner = int(argv[1])
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[2], argv[2:])
        except OSError as e:
            sys.stderr.write("guard.py: cannot run %s: %s\n" % (argv[2], e))
            os._exit(127)

    def forward(sig, _frame):
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)

    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            if os.WIFSIGNALED(status):
                sys.exit(128 + os.WTERMSIG(status))
            sys.exit(os.WEXITSTATUS(status))
        # Our parent is the owner: once it is gone we are re-parented (a dead owner can also
        # linger as a zombie, which kill(pid, 0) still finds).
        if os.getppid() != owner or not alive(owner):
            os.killpg(0, signal.SIGKILL)
        time.sleep(POLL_S)


if __name__ == "__main__":
    main(sys.argv)
