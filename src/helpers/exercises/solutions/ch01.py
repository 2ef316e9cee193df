"""Chapter 1's solutions."""


def answer_of(context, motion_samples, color_samples):
    relevant = motion_samples if context == "motion" else color_samples
    return " right" if sum(relevant) > 0 else " left"
