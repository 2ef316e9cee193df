"""Chapter 9's solutions."""
from helpers.tasks.entity import make_trial


def make_counterfactual(clean, rng, cfg):
    pool = [o for o in cfg.objects if o not in clean.objects]           # objects disjoint from the clean ones
    objects = [pool[i] for i in rng.choice(len(pool), clean.n_boxes, replace=False)]
    labels = [cfg.labels[i] for i in rng.choice(len(cfg.labels), clean.n_boxes, replace=False)]
    query = int(rng.choice([i for i in range(clean.n_boxes) if i != clean.query_index]))
    return make_trial(objects, labels, query)


def earlier_label_position(tokenizer, trial):
    import re
    match = re.search(rf"\bBox ({trial.query_label})[,.]", trial.prompt)   # the context's "Box X," (or "X.")
    start = match.start(1)
    enc = tokenizer(trial.prompt, return_offsets_mapping=True)
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        if a <= start < b:                              # the token whose characters hold the label
            return i
