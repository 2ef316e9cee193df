"""Chapter 5's solutions."""
import numpy as np


def permutation_p(observed, null):
    k = np.sum(np.asarray(null) >= observed)       # shuffles at least as extreme as what we saw
    return (1 + k) / (len(null) + 1)               # the observed arrangement counts as one of them
