"""Chapter 1's solutions."""


def answer_of(context, motion_samples, color_samples):
    relevant = motion_samples if context == "motion" else color_samples
    return " right" if sum(relevant) > 0 else " left"


def ignore_context_accuracy(trials, stream):
    right = 0
    for t in trials:
        samples = t.motion_samples if stream == "motion" else t.color_samples      # whatever the context says
        right += (1 if sum(samples) > 0 else -1) == t.choice
    return right / len(trials)
