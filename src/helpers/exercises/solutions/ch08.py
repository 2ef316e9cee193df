"""Chapter 8's solutions."""
import torch


def cmap_head(a, b, ids, layer, head):
    saved = {}

    def grab(z):                                    # model B's run: keep the head's output
        saved["z"] = z[:, :, head].clone()

    def put(z):                                     # model A's run: use B's instead
        z = z.clone()
        z[:, :, head] = saved["z"]
        return z

    with torch.no_grad():
        with b.hooks({("z", layer): grab}):
            b.model(input_ids=ids)
        with a.hooks({("z", layer): put}):
            return a.model(input_ids=ids).logits[:, -1]


def random_circuit(group_sizes, n_layers, n_heads, rng):
    circuit = []
    for size in group_sizes:
        flat = rng.choice(n_layers * n_heads, size=size, replace=False)    # without replacement
        circuit.append([divmod(int(i), n_heads) for i in flat])            # flat index -> (layer, head)
    return circuit
