"""Write service routes: v2/v1 proposals, the pending queue, roles and beta models."""
