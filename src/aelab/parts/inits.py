"""How a model's fully connected layers start (`model.init`).

pytorch: each layer as torch.nn.Linear draws it (Kaiming-uniform with a = sqrt(5): weights
         uniform in ±1/sqrt(fan_in), a variance of 1/(3 fan_in)), the default.
glorot:  weights uniform in ±sqrt(6 / (fan_in + fan_out)), biases zero (Glorot & Bengio 2010,
         eq. 16), an initialisation made for tanh networks. Through a stack of tanh layers it
         keeps the activations' variance about constant where PyTorch's default shrinks it
         about threefold a layer, so a deep tanh model does not begin on a plateau where its
         code carries nothing (docs/experiments/zoo.md measures it).

The draws come from torch's global generator, which a run seeds before it builds its model.
Only `nn.Linear` layers are drawn again: convolutions, codebooks, pseudo-inputs and any layer a
part starts on purpose (a residual block's last convolution at zero) keep their own start.
"""

from __future__ import annotations

from torch import nn

from aelab.language import N_


def glorot(model: nn.Module) -> None:
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


# model.init -> what it does to a built model
INITS = {"pytorch": lambda model: None, "glorot": glorot}
INIT_WORDS = {"glorot": N_("Glorot initialisation")}
