"""medbench.data."""
