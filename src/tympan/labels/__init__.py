"""tympan.labels."""
