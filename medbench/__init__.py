"""medbench: a Jupyter-first research workbench for medical image analysis."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
