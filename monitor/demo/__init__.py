"""`monitor demo`: the whole system in one process (broker, simulator, daemon, summary)."""
