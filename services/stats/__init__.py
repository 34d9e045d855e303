"""The stats service: AI-Horde status, usage and workers merged with the model reference."""
