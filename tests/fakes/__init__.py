"""In-process fakes of the external services the model reference talks to."""
