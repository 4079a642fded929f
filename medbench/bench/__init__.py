"""medbench.bench."""
