"""Classify generated images with a trained ViT checkpoint (issue 17), beside the Bayes rule.

``classify(checkpoint, n, seed)`` draws n fresh images from the checkpoint's own source (a
stream that neither training nor validation uses), runs the model (torch_impl) and the exact
Bayes posterior of the source on them, and returns one row per image: the true class, where
its template was pasted, the model's class and probability, and the Bayes class and
probability. The classifier counterpart of ``formal_transformers.sampling.sample``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from formal_transformers.checkpoint import load_checkpoint
from formal_transformers.errors import CheckpointError, ConfigError
from formal_transformers.sources import source_from_dict


def classify(checkpoint: str | os.PathLike, n: int = 8, seed: int = 0,
             plot: str | os.PathLike | None = None) -> dict[str, Any]:
    """Predicted and Bayes classes of n generated images (see the module docstring).

    ``plot``: also write a PNG of the first image with its patch grid, the class token's
    attention over the patches in the last layer (mean over heads), and both decisions.
    """
    import torch

    from torch_impl.models import model_from_canonical

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"--n (images to classify) must be an integer >= 1, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed!r}")
    ck = load_checkpoint(checkpoint)
    if ck.run.get("arch") != "vit":
        raise CheckpointError(f"{checkpoint} holds a {ck.run.get('arch')} checkpoint; "
                              "`classify` takes a ViT trained on --source images (use "
                              "`sample` for the token models)")
    source = source_from_dict(ck.run["source"])
    batch, where = source.sample(seed, n)
    model = model_from_canonical(ck.config, ck.params, dtype=torch.float32).eval()
    with torch.no_grad():
        p = torch.softmax(model(torch.as_tensor(batch.x)), dim=-1).double().numpy()
    bayes = np.exp(source.log_posterior(batch.x))
    if plot is not None:
        from formal_transformers.atomic import atomic_write
        from formal_transformers.render import vit_attention_figure
        from torch_impl.vision import class_token_attention

        weights = class_token_attention(model, torch.as_tensor(batch.x[:1])).double().numpy()
        attention = weights[0, -1].mean(axis=0)[1:].reshape(source.grid, source.grid)
        atomic_write(plot, lambda tmp: vit_attention_figure(
            tmp, batch.x[0], source.patch_size, attention, int(batch.targets[0]),
            int(p[0].argmax()), int(bayes[0].argmax()), divmod(int(where[0]), source.grid)))
    g = source.grid
    rows = [{"image": b, "true": int(batch.targets[b]),
             "template_at": [int(where[b]) // g, int(where[b]) % g],
             "predicted": int(p[b].argmax()), "p_predicted": float(p[b].max()),
             "bayes": int(bayes[b].argmax()), "p_bayes": float(bayes[b].max())}
            for b in range(n)]
    return {"arch": "vit", "source": source.name, "step": ck.step, "seed": seed,
            "agree_with_bayes": sum(r["predicted"] == r["bayes"] for r in rows),
            "correct": sum(r["predicted"] == r["true"] for r in rows),
            "bayes_correct": sum(r["bayes"] == r["true"] for r in rows), "n": n, "rows": rows,
            "plot": None if plot is None else str(plot)}
