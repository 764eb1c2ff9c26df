"""Ctrl-C that stops training between steps, so the checkpoint it leaves resumes exactly.

A SIGINT arriving mid-step would leave that step half done — its BatchNorm statistics updated,
its optimizer step not — and a checkpoint saved then would make the resumed run redo the step.
While training, the first Ctrl-C only asks to stop; the loop finishes the step in progress,
saves a checkpoint and raises ``KeyboardInterrupt``. A second Ctrl-C stops at once. Where SIGINT
is ignored (a background job: ``cmd &``, ``nohup``), it stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

import torch


class StopRequest:
    """Set by the SIGINT handler; read by the training loop at step boundaries."""

    def __init__(self) -> None:
        self.requested = False

    def agreed(self, info: Any) -> bool:
        """Whether to stop now. Under torchrun every rank must stop at the same step, so the
        request is summed across ranks (one number per step)."""
        if not info.enabled:
            return self.requested
        from .distributed import all_reduce_sum

        return all_reduce_sum(torch.tensor([float(self.requested)]), info).item() > 0

    @classmethod
    @contextlib.contextmanager
    def on_sigint(cls) -> Iterator["StopRequest"]:
        stop = cls()
        if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
            yield stop  # signals go to the main thread only; an ignored SIGINT stays ignored
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            if stop.requested:  # the second Ctrl-C: stop now
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            stop.requested = True
            print("\nstopping after this step with a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
        try:
            yield stop
        finally:
            signal.signal(signal.SIGINT, previous)
