"""The read service: every public read, answered from an immutable in-memory snapshot."""
