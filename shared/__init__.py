"""Plumbing the services share: snapshot format, dataset, config helpers, errors and HTTP glue."""
