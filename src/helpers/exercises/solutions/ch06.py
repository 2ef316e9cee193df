"""Chapter 6's solutions."""
import numpy as np


def standardize(Xtr, Xte):
    mu, sd = Xtr.mean(0), Xtr.std(0)               # the training rows only
    sd = np.where(sd > 1e-7 * (1.0 + np.abs(mu)), sd, 1.0)   # a constant unit is only centred
    return (Xtr - mu) / sd, (Xte - mu) / sd
