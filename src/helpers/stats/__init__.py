"""Statistics of the book, one implementation of each: intervals for proportions
(:mod:`.intervals`), the bootstrap (:mod:`.bootstrap`), tests (:mod:`.tests`) and multiplicity
corrections (:mod:`.multiplicity`).  Pure NumPy/SciPy: imports nothing else of the package."""
