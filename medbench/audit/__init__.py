"""medbench.audit."""
