"""A static picture in every widget's display data.

A widget view (``application/vnd.jupyter.widget-view+json``) renders only
while the kernel that owns the widget runs. Everywhere else (a committed
notebook on GitHub or nbviewer, the HTML export, a notebook reopened later) it
is an empty box or "model not found". So each medbench widget adds to its own
MIME bundle an ``image/png`` rendered with matplotlib from its current state
and a readable ``text/plain``: a live front end still picks the widget view,
every other renderer shows the picture. :func:`medbench.runner.drop_widget_views`
removes the dead view references from notebooks whose kernel has exited.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from matplotlib.figure import Figure

#: Resolution of the static pictures (pixels per inch).
PICTURE_DPI = 100


def figure_png(fig: Figure, dpi: int = PICTURE_DPI) -> bytes:
    """PNG bytes of a figure (no pyplot; deterministic metadata)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def with_picture(bundle: Any, png: bytes, text: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A widget's ``_repr_mimebundle_`` result with ``image/png`` and ``text/plain`` added.

    ``bundle`` is what the widget base class returned: a data dict, a
    ``(data, metadata)`` pair, or None (a closed widget: no display at all).
    """
    if bundle is None:
        return None
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    data = {**data, "image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}
    return data, dict(metadata or {})
