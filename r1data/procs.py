"""Processes that own temp folders: whether a pid lives, and sweeping the folders of dead ones.

vLLM engines (r1data/engines.py) and bounded-call workers (r1data/filters/bounded.py) each make
a folder named `<prefix><pid>-...` for their process; a SIGKILLed process never removes its
own, so the next one sweeps those whose pid is gone. Core, so both layers share one copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (someone else's counts: kill says EPERM)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def sweep_dead_owners(root: str | Path, prefix: str) -> list[Path]:
    """Remove the folders `<prefix><pid>-*` under root whose process is gone; the ones removed.
    Names whose pid part is not a number are left alone."""
    swept = []
    for d in Path(root).glob(f"{prefix}*-*"):
        pid = d.name[len(prefix):].split("-")[0]
        if d.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            swept.append(d)
    return swept
