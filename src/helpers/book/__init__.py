"""The book: chapters, the runner (papermill), the site (Quarto or a preview), the command line."""
