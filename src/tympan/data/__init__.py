"""tympan.data."""
