"""The pinned DICOM PS3.15 Annex E attribute table and how its actions are resolved.

The table (``medbench/io/tables/ps3.15_table_E.1-1.csv``) is a machine-readable
copy of Table E.1-1 "Application Level Confidentiality Profile Attributes",
column "Basic Prof.", for the edition named in its ``# edition:`` header line.
It is data, versioned with the code: changing edition is a reviewed diff of
that file, never a download at run time.

Compound actions (``X/Z``, ``Z/D``, ...) let the standard say "the stricter
action unless the IOD needs the attribute". medbench does not track IOD
module types per SOP class, so it resolves each compound action once, here,
to the strictest action that keeps files usable (see :data:`EFFECTIVE_ACTION`).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

from medbench.errors import ConfigError

TABLE_FILE = "ps3.15_table_E.1-1.csv"

#: Every action code the table may carry (basic profile column of Table E.1-1).
ALLOWED_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})

#: Compound codes resolved to one action medbench applies.
#:
#: * ``X/Z``, ``X/D``, ``X/Z/D`` -> ``X``: removing is the strictest choice; a
#:   de-identified research copy does not need these attributes to be present.
#: * ``Z/D`` -> ``Z``: an empty value (the attributes with Z/D are Type 2 in the
#:   common image IODs). Patient ID is the one exception, handled in the
#:   de-identifier: it gets a keyed pseudonym (a dummy value the standard
#:   allows for Z/D) so de-identified series still group by patient.
#: * ``X/Z/U*`` -> ``U*``: keep the reference sequence (Referenced Image,
#:   Source Image) but replace every UID inside it and apply the profile to
#:   the rest of its items. Removing it would be stricter but would break the
#:   links between images that the profile's U* exists to preserve; nothing
#:   identifying survives because the items are de-identified recursively.
#: * ``C`` (clean, not used by the basic column) -> replaced by a dummy value.
EFFECTIVE_ACTION: Mapping[str, str] = {
    "D": "D",
    "Z": "Z",
    "X": "X",
    "K": "K",
    "C": "C",
    "U": "U",
    "Z/D": "Z",
    "X/Z": "X",
    "X/D": "X",
    "X/Z/D": "X",
    "X/Z/U*": "U*",
}

_TAG_RE = re.compile(r"^\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)$")


def parse_tag_pattern(text: str) -> tuple[int, int]:
    """``"(gggg,eeee)"`` -> ``(mask, value)``; ``x`` digits match anything.

    ``(0010,0010)`` gives ``(0xFFFFFFFF, 0x00100010)``; ``(60xx,3000)`` gives
    ``(0xFF00FFFF, 0x60003000)``. Raises :class:`ConfigError` on anything else.
    """
    match = _TAG_RE.match(text.strip())
    if not match:
        raise ConfigError(f"tag {text!r} is not of the form (gggg,eeee)")
    digits = match.group(1) + match.group(2)
    mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
    value = int(digits.replace("x", "0"), 16)
    return mask, value


@dataclass(frozen=True)
class ProfileTable:
    """Table E.1-1 as loaded: the rows (``frame``) plus fast tag lookup.

    ``frame`` has columns ``tag``, ``keyword``, ``attribute_name``,
    ``basic_profile``; ``edition`` names the DICOM edition it was taken from.
    """

    edition: str
    frame: pd.DataFrame = field(repr=False)
    _exact: Mapping[int, str] = field(repr=False)
    _patterns: tuple[tuple[int, int, str], ...] = field(repr=False)

    def action_for(self, tag: int) -> str | None:
        """The table's basic-profile code for ``tag`` (e.g. ``"X/Z/D"``), or None."""
        tag = int(tag)
        code = self._exact.get(tag)
        if code is not None:
            return code
        for mask, value, pattern_code in self._patterns:
            if tag & mask == value and (tag >> 16) % 2 == 0:
                return pattern_code
        return None

    def __len__(self) -> int:
        return len(self.frame)


def parse_table(text: str, source: str = TABLE_FILE) -> ProfileTable:
    """Parse the CSV text of a profile table, validating every row.

    Header lines start with ``#``; ``# edition: ...`` is required. Tags must
    be unique and well formed and actions in :data:`ALLOWED_ACTIONS`.
    """
    edition = ""
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if key.strip() == "edition":
                edition = value.strip()
        elif line.strip():
            body.append(line)
    if not edition:
        raise ConfigError(f"{source}: missing '# edition:' header line")
    reader = csv.DictReader(io.StringIO("\n".join(body)))
    required = {"tag", "keyword", "attribute_name", "basic_profile"}
    if not required <= set(reader.fieldnames or ()):
        raise ConfigError(f"{source}: columns {sorted(required)} required, found {reader.fieldnames}")
    rows = list(reader)
    exact: dict[int, str] = {}
    patterns: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows, start=2):
        tag, code = str(row["tag"]).strip(), str(row["basic_profile"]).strip()
        if tag in seen:
            raise ConfigError(f"{source}: tag {tag} appears twice (row {line_no})")
        seen.add(tag)
        if code not in ALLOWED_ACTIONS:
            raise ConfigError(f"{source}: tag {tag} has unknown action {code!r}")
        mask, tag_value = parse_tag_pattern(tag)
        if mask == 0xFFFFFFFF:
            exact[tag_value] = code
        else:
            patterns.append((mask, tag_value, code))
    frame = pd.DataFrame(rows, columns=["tag", "keyword", "attribute_name", "basic_profile"])
    return ProfileTable(edition=edition, frame=frame, _exact=exact, _patterns=tuple(patterns))


@functools.lru_cache(maxsize=1)
def load_profile_table() -> ProfileTable:
    """The pinned Table E.1-1 shipped in the package (read once, then cached)."""
    text = resources.files("medbench.io").joinpath("tables", TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(text)
