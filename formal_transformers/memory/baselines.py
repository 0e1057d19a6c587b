"""Two estimates from outside this project, set beside ours on every measured run
(spec/memory.md section 12, formulas (M71)-(M72)).

- ``static``: parameters, gradients and optimizer state only, (M12)-(M14) summed -- the
  back-of-the-envelope "P times 16 bytes" for AdamW in float32; for decoding, the weights.
- ``korthikanti``: ``static`` plus the activation memory per layer of Korthikanti et al.
  2022 ("Reducing Activation Recomputation in Large Transformer Models", arXiv 2205.05198,
  section 4.1), s b h (34 + 5 a s / h) bytes for 16-bit activations, adapted to b bytes per
  number as (M72) states; for decoding, applied to the cache's T positions.
"""

from __future__ import annotations

from formal_transformers.hyperparameters import Config, EDTransformerConfig
from formal_transformers.memory.counts import parameter_counts


def static_bytes(config: Config, b: int, optimizer: str | None) -> int:
    """(M71) P b (weights) + P b (gradients) + 2 P b (AdamW's moments) when training
    (``optimizer`` 'adamw' or 'sgd'); P b alone for decoding (``optimizer`` None)."""
    P = parameter_counts(config)["total"]
    if optimizer is None:
        return P * b
    return P * b * (2 + (2 if optimizer == "adamw" else 0))


def korthikanti_layer_bytes(s: int, batch: int, h: int, a: int, b: int) -> int:
    """(M72) One layer's activations after Korthikanti et al. (2022), section 4.1, with
    b bytes per number: of their 34 s b h + 5 a s^2 b bytes in 16 bits, 16 s b h + 2 a s^2 b
    numbers are 2-byte activations (now b bytes each) and 2 s b h + a s^2 b are the 1-byte
    dropout masks (kept at 1 byte, as the formula assumes dropout):
    s b h (16 b + 2) + a s^2 b (2 b + 1); b = 2 gives their s b h (34 + 5 a s / h)."""
    return s * batch * h * (16 * b + 2) + a * s * s * batch * (2 * b + 1)


def korthikanti_bytes(config: Config, batch: int, seq: int, b: int, optimizer: str | None
                      ) -> int:
    """(M72) ``static_bytes`` + L x (M72's layer term), h = d_e, a = H, s = seq (the
    encoder's and the decoder's layers of the encoder-decoder, all at s)."""
    L = config.L_dec + config.L_enc if isinstance(config, EDTransformerConfig) else config.L
    layer = korthikanti_layer_bytes(seq, batch, config.d_e, config.H, b)
    return static_bytes(config, b, optimizer) + L * layer


def baseline_estimates(config: Config, batch: int, seq: int, b: int, optimizer: str | None
                       ) -> dict[str, int]:
    """Both outside estimates of one training step (``optimizer`` given) or decode (None)."""
    return {"static": static_bytes(config, b, optimizer),
            "korthikanti": korthikanti_bytes(config, batch, seq, b, optimizer)}
