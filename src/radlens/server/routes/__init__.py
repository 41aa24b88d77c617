"""HTTP routes, one module per area; each route translates around one library call."""
