"""Run a command that dies with the service: ``python -m services.training.leash PARENT_PID CMD...``.

A job's process must not outlive the service that started it (a SIGKILLed service would
otherwise leave it writing to its run folder while the restarted service resumes the job).
Linux's PR_SET_PDEATHSIG does that, and it survives exec; it is set here, in a fresh process,
rather than between fork and exec in the service, where Python's fork hooks (gRPC's among
them) would run in the child.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the service's restart cleans up instead
        pass
    if os.getppid() != parent:
        return 128 + signal.SIGKILL  # the service died before the signal was set
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
