"""The one error type a user should see without a traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

__all__ = ["UserError", "run_stage"]


class UserError(Exception):
    """A problem with the user's input: one line saying what, where and what is allowed."""


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage entry point: a ``UserError`` prints one line and exits 2; bugs keep their traceback."""
    # our progress lines at INFO; other libraries (onnxscript, dvc) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("torchstages").setLevel(logging.INFO)
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        # Ctrl-C is a user's choice, not a bug: no traceback. Outputs are renamed into place
        # whole, so none is half-written; train keeps its checkpoint of the finished epochs.
        # Under torchrun every process gets it: the first says so for all
        if os.environ.get("RANK", "0") == "0":
            print(
                "interrupted: nothing half-written is left; dvc repro runs the stage again "
                "(train resumes after its last finished epoch)",
                file=sys.stderr,
            )
        raise SystemExit(130) from None
