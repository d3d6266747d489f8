"""tympan.train."""
