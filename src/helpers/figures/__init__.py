"""Figures and widgets of the book: each function takes tables or arrays and returns a figure.
Imports nothing else of the package (colours and styles live in :mod:`.style`)."""
