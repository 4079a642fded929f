"""medbench.viz."""
