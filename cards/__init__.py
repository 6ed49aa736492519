"""Dataset and model card templates and their rendering."""
