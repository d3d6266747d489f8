"""tympan.eval."""
