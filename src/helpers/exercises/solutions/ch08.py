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
