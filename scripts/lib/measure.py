#!/usr/bin/python3
"""Run a command and write its resource use, like `/usr/bin/time -o OUT -f '%e %U %S %M'`.

  measure.py OUT_FILE COMMAND [ARGS...]

Writes one line "<wall s> <user s> <sys s> <peak RSS KiB>" to OUT_FILE and exits with the
command's exit code (128 + signal number if a signal ended it). Used when /usr/bin/time is
not installed.
"""

import os
import sys
import time


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    out = argv[1]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[2], argv[2:])
        except OSError as e:
            sys.stderr.write("measure.py: cannot run %s: %s\n" % (argv[2], e))
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    with open(out, "w") as f:
        f.write("%.3f %.3f %.3f %d\n" % (wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main(sys.argv)
