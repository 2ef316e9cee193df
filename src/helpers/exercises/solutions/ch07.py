"""Chapter 7's solutions."""
import torch


def patch_head(arch, clean_ids, cf_ids, layer, head, position):
    saved = {}

    def grab(z):                                   # the counterfactual run: keep head's output
        saved["z"] = z[:, position, head].clone()

    def put(z):                                    # the clean run: put it at the same place
        z = z.clone()
        z[:, position, head] = saved["z"]
        return z

    with torch.no_grad():
        with arch.hooks({("z", layer): grab}):
            arch.model(input_ids=cf_ids)
        with arch.hooks({("z", layer): put}):
            return arch.model(input_ids=clean_ids).logits[:, -1]


def path_patch_sender(arch, clean_ids, cf_ids, layer, head, position):
    from helpers.interventions.patching import record
    layers = range(arch.n_layers)
    with torch.no_grad():
        clean = record(arch, clean_ids, [("z", l) for l in layers])      # every head's z, clean run
        cf = record(arch, cf_ids, [("z", layer)])

    def frozen(l):
        def fn(z):
            z = clean[("z", l)].clone()                  # every head at its clean output ...
            if l == layer:
                z[:, position, head] = cf[("z", layer)][:, position, head]    # ... but the sender
            return z
        return fn

    with torch.no_grad(), arch.hooks({("z", l): frozen(l) for l in layers}):
        return arch.model(input_ids=clean_ids).logits[:, -1]
