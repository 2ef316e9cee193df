"""``python -m helpers``: the command line (:mod:`helpers.book.cli`)."""
import sys

from helpers.book.cli import main

if __name__ == "__main__":
    sys.exit(main())
