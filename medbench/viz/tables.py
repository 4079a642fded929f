"""Tables that read well in JupyterLab at a normal width and in the HTML export.

A plain DataFrame's HTML repr cuts every text cell at
``display.max_colwidth`` (50 characters: file names and error messages lose
their ends) and never wraps, so a wide table scrolls its last columns out of
sight. :func:`table` returns a pandas :class:`~pandas.io.formats.style.Styler`
instead: full text, wrapped at word boundaries or anywhere in long tokens
(paths, UIDs), each text column at most ``max_width_em`` wide, numbers right
aligned at a fixed precision, and paths shown relative to a folder you name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns holding file paths, shown relative to ``relative_to`` when given.
PATH_COLUMNS = ("path", "source", "output", "file", "filename")


def relative_path(value: Any, root: str | os.PathLike[str]) -> Any:
    """``value`` as a POSIX path relative to ``root`` when it is a path under it, else unchanged."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        return value
    try:
        return Path(os.path.abspath(value)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return value


def table(
    df: pd.DataFrame,
    *,
    relative_to: str | os.PathLike[str] | None = None,
    path_columns: Sequence[str] = PATH_COLUMNS,
    max_width_em: float = 20.0,
    precision: int = 3,
    caption: str | None = None,
) -> Any:
    """A wrapped, full-text view of ``df`` for display (a pandas Styler; the data is not changed).

    ``relative_to``: a folder; path columns (:data:`PATH_COLUMNS` present in
    ``df``) are shown relative to it, and the caption says so.
    """
    shown = df.copy()
    notes = [caption] if caption else []
    if relative_to is not None:
        columns = [c for c in path_columns if c in shown.columns]
        for column in columns:
            shown[column] = shown[column].map(lambda v: relative_path(v, relative_to))
        if columns:
            notes.append(f"{', '.join(columns)} relative to {Path(relative_to).name or relative_to}/")
    text_columns = [c for c in shown.columns if not pd.api.types.is_numeric_dtype(shown[c])]
    number_columns = [c for c in shown.columns if c not in text_columns]
    styler = shown.style.format(precision=precision, na_rep="")
    styler = styler.set_table_styles([
        {"selector": "thead th", "props": "text-align: left; vertical-align: bottom; white-space: nowrap;"},
        {"selector": "tbody th", "props": "vertical-align: top;"},
        {"selector": "td", "props": "vertical-align: top;"},
    ])
    if number_columns:
        styler = styler.set_properties(subset=number_columns, **{"text-align": "right", "white-space": "nowrap"})
    for column in text_columns:
        # Long unbroken tokens (paths, UIDs) may break anywhere; words wrap at spaces only, so a column of
        # short words is never squeezed into broken words.
        longest = int(shown[column].map(lambda v: max((len(t) for t in str(v).split()), default=0)).max() or 0)
        wrap = "anywhere" if longest > 24 else "break-word"
        styler = styler.set_properties(subset=[column], **{
            "text-align": "left", "white-space": "normal", "overflow-wrap": wrap,
            "max-width": f"{max_width_em}em", "min-width": f"{min(longest, 12) * 0.6:.1f}em" if wrap == "break-word" else "6em",
        })
    if notes:
        styler = styler.set_caption("; ".join(notes))
    return styler
