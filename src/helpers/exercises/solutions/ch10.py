"""Chapter 10's solutions."""


def share_moved(patched, a, b):
    if b <= a:                     # B is not better: there is no advantage to move
        return float("nan")
    return (patched - a) / (b - a)
