"""Content-addressed storage of submitted files (models, attachments)."""
