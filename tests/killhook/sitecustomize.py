"""Loaded by every Python process of a kill test (PYTHONPATH): with TORCHSTAGES_KILL_AT_RENAME=N,
a stage script SIGKILLs itself just before its N-th os.replace, when the temp file is fully written
but not yet in place: the moment a write without temp file + rename would leave a torn file."""

import os
import signal
import sys

_AT = int(os.environ.get("TORCHSTAGES_KILL_AT_RENAME", "0"))

if _AT:
    _replace = os.replace
    _count = [0]

    def _replace_then_maybe_die(src, dst, **kwargs):
        if sys.argv and sys.argv[0].replace("\\", "/").startswith("stages/"):
            _count[0] += 1
            if _count[0] == _AT:
                os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, **kwargs)

    os.replace = _replace_then_maybe_die
