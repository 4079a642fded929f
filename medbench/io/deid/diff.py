"""Before/after table of a de-identification, for notebooks."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pandas as pd
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medbench.io.deid.core import element_vr, resolve_action, tag_text
from medbench.io.deid.table import ProfileTable, load_profile_table

DIFF_COLUMNS = ["tag", "keyword", "before", "after", "action", "change"]
#: File meta group length and version: encoding details pydicom fills in when writing.
_ENCODING_DETAILS = frozenset({"(0002,0000)", "(0002,0001)"})
_MAX_TEXT = 80


def _display(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        text = value
    elif isinstance(value, (MultiValue, list, tuple)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _flatten(ds: Dataset, prefix: str = "") -> dict[str, tuple[int, str | None, str]]:
    """``{path: (tag, vr, shown value)}`` for every element of ``ds``, nested items included."""
    flat: dict[str, tuple[int, str | None, str]] = {}
    for tag in list(ds.keys()):
        path = prefix + tag_text(int(tag))
        vr = element_vr(ds, tag)
        value = ds[tag].value
        if vr == "SQ":
            flat[path] = (int(tag), vr, f"<sequence of {len(value)} items>")
            for index, item in enumerate(value):
                flat.update(_flatten(item, f"{path}[{index}]."))
        else:
            flat[path] = (int(tag), vr, _display(value))
    return flat


def _parents(path: str) -> Iterable[str]:
    parts = path.split(".(")
    for i in range(1, len(parts)):
        yield ".(".join(parts[:i]).rsplit("[", 1)[0]


def _action(table: ProfileTable, tag: int, vr: str | None, shifted: bool, after: str) -> str:
    if tag >> 16 == 0x0002:
        return "file meta rebuilt"
    resolution = resolve_action(table, tag, vr)
    if shifted and vr in ("DA", "DT") and after:
        return f"{resolution.rule} (date shifted)"
    if not resolution.rule:
        return "stamped by de-identification"
    return f"{resolution.rule} ({resolution.action})" if resolution.rule != resolution.action else resolution.rule


def deid_diff(original: Dataset, deidentified: Dataset, *, table: ProfileTable | None = None) -> pd.DataFrame:
    """What de-identification changed: one row per changed, removed or added element.

    Columns: ``tag`` (with the sequence path for nested elements, e.g.
    ``(0008,1140)[0].(0008,1155)``), ``keyword``, ``before``, ``after``
    (values shortened for display), ``action`` (the table's code and the
    action applied, or the medbench rule) and ``change`` (removed, emptied,
    replaced, added). Elements inside a removed or added sequence are not
    listed separately. File meta elements are compared too.
    """
    table = table or load_profile_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before, after = _flatten(original), _flatten(deidentified)
        for name, ds in (("before", original), ("after", deidentified)):
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                target = before if name == "before" else after
                target.update((k, v) for k, v in _flatten(meta).items() if k not in _ENCODING_DETAILS)
    shifted = str(deidentified.get("LongitudinalTemporalInformationModified", "")) == "MODIFIED"
    rows = []
    for path in list(before) + [p for p in after if p not in before]:
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and old[2] == new[2]:
            continue
        if any((p in before) != (p in after) for p in _parents(path)):
            continue
        tag, vr, _ = old or new  # type: ignore[misc]
        shown_old, shown_new = (old[2] if old else ""), (new[2] if new else "")
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif not shown_new or shown_new == "<sequence of 0 items>":
            change = "emptied"
        else:
            change = "replaced"
        action = "stamped by de-identification" if old is None else _action(table, tag, vr, shifted, shown_new)
        rows.append(
            {
                "tag": path,
                "keyword": keyword_for_tag(tag) or "",
                "before": shown_old,
                "after": shown_new,
                "action": action,
                "change": change,
            }
        )
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)
