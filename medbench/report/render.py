"""Render the HTML reports from jinja2 templates shipped as package data.

Templates live in a ``templates/`` folder next to the code that owns them
(``medbench/report/templates/index.html.j2``, ``medbench/audit/templates/...``);
:func:`render` finds them through :mod:`importlib.resources`, so an installed
wheel renders exactly what a checkout does. Autoescaping is on: file names and
error messages from hostile input cannot inject markup.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment(package: str = "medbench.report") -> jinja2.Environment:
    """The jinja2 environment of ``package``'s ``templates/`` folder (autoescape on, undefined is an error)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["delta"] = delta_text
    return env


def _num(value: Any, digits: int = 4) -> str:
    """Numbers compactly (``0.9512``, ``1.2e-05``); anything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def delta_text(value: float, digits: int = 4) -> str:
    """A signed change: ``+0.0123``, ``−2`` (minus sign), ``±0``; ``digits`` significant digits."""
    magnitude = _num(abs(value), digits) if isinstance(value, float) else str(abs(value))
    return ("+" if value > 0 else "\u2212" if value < 0 else "\u00b1") + magnitude


def render(template: str, package: str = "medbench.report", **context: Any) -> str:
    """Render ``templates/<template>`` of ``package`` with ``context``."""
    return environment(package).get_template(template).render(**context)
