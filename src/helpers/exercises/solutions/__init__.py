"""The solutions of the exercises, one module per chapter (kept apart from the chapters, so that a
course build can leave them out)."""
