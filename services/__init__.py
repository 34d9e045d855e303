"""The model reference services: read_api, write_queue and stats, and the `hmr` command."""
