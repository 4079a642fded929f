"""medbench.report."""
