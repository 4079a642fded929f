"""Progress display for training: a bar where someone watches, a line per validation in logs, silence headless."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


def _interactive() -> bool:
    """True in a Jupyter kernel with a front end, or when stderr is a terminal."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
            return True
    except ImportError:
        pass
    return sys.stderr.isatty()


class Progress:
    """tqdm (auto: widget in JupyterLab, text in a terminal) over epochs; plain lines when not interactive."""

    def __init__(self, *, enabled: bool, total: int, initial: int = 0, desc: str = "") -> None:
        self.enabled = enabled
        self.desc = desc
        self._note = ""
        self._bar: Any = None
        if enabled and _interactive():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="epoch", leave=True)

    def note(self, text: str) -> None:
        """The latest validation result, shown with the next update."""
        self._note = text

    def update(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        loss = row.get("loss")
        text = (f"loss {loss:.4f} " if isinstance(loss, float) else "") + self._note
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        elif self._note:
            print(f"{self.desc} epoch {int(row['epoch']) + 1}: {text}", file=sys.stderr, flush=True)
        self._note = ""

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
