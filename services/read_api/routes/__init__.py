"""Read service routes, one module per resource; literal paths are registered before {category}."""
