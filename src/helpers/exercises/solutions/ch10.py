"""Chapter 10's solutions."""


def share_moved(patched, a, b):
    if b <= a:                     # B is not better: there is no advantage to move
        return float("nan")
    return (patched - a) / (b - a)


def dcm_mix(z_base, z_source, mask):
    m = mask[None, :, None]                      # one value per head: (1, k, 1)
    return m * z_base + (1 - m) * z_source
