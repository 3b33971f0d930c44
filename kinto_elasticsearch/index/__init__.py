"""What the engine holds: index names, mappings, and what a record becomes in the index."""
