"""Chapter 3's solutions."""
import torch


def zero_head(z, head):
    z = z.clone()                  # (batch, pos, n_heads, d_head)
    z[:, :, head] = 0
    return z


def logits_without_head(arch, ids, layer, head):
    H, D = arch.n_heads, arch.d_head

    def pre_hook(module, args):
        x = args[0]                                            # (batch, pos, n_heads * d_head)
        z = x.reshape(*x.shape[:-1], H, D).clone()
        z[:, :, head] = 0
        return (z.reshape(x.shape),) + tuple(args[1:])

    handle = arch.out_proj(layer).register_forward_pre_hook(pre_hook)
    try:
        with torch.no_grad():
            return arch.model(input_ids=ids).logits
    finally:
        handle.remove()
