"""tympan.distill."""
