"""The vision methods of the bundled adapters (spec: Algorithms 75-78), mixed into
ReferenceAdapter and TorchAdapter. Images arrive as (B, C, h, w) arrays; the reference runs one
image at a time in its column layout, torch_impl batched."""

from __future__ import annotations

import numpy as np
import torch

from reference_numpy import vision as ref_vision

VISION = ("patch_extraction", "patch_embedding", "vit_classifier", "vit_classifier_backward")


class ReferenceVision:
    """reference_numpy.vision, image by image: the spec's columns become the adapter's rows."""

    def patch_extraction(self, I, patch_size):
        return np.stack([ref_vision.patch_extraction(img, patch_size).T for img in I])

    def patch_embedding(self, I, params, patch_size):
        return np.stack([ref_vision.patch_embedding(img, params["W_pe"], params["b_pe"],
                                                    params["e_cls"], params.get("W_p"),
                                                    patch_size).T for img in I])

    def vit_classifier(self, I, params, config):
        return np.stack([ref_vision.vit_classifier(img, params, config) for img in I])

    def vit_classifier_backward(self, I, params, config, dp):
        grads: dict[str, np.ndarray] = {}
        dI = []
        for b, img in enumerate(I):
            cache: dict = {}
            ref_vision.vit_classifier(img, params, config, cache)
            dI_b, g = ref_vision.vit_classifier_backward(dp[b], cache, config)
            dI.append(dI_b)
            for k, v in g.items():
                grads[k] = grads.get(k, 0) + v
        return grads | {"I": np.stack(dI)}


class TorchVision:
    """torch_impl.vision, batched; gradients by autograd."""

    def patch_extraction(self, I, patch_size):
        from torch_impl.vision import patch_extraction

        return patch_extraction(torch.from_numpy(np.ascontiguousarray(I)), patch_size).numpy()

    def patch_embedding(self, I, params, patch_size):
        from torch_impl.vision import patch_embedding

        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        return patch_embedding(torch.from_numpy(np.ascontiguousarray(I)), t,
                               patch_size).numpy()

    def vit_classifier(self, I, params, config):
        from torch_impl.vision import vit_classifier

        with torch.no_grad():
            return vit_classifier(torch.from_numpy(np.ascontiguousarray(I)), params,
                                  config).numpy()

    def vit_classifier_backward(self, I, params, config, dp):
        from torch_impl.vision import vit_classifier_backward

        grads = vit_classifier_backward(torch.from_numpy(np.ascontiguousarray(dp)),
                                        torch.from_numpy(np.ascontiguousarray(I)), params,
                                        config)
        return {k: v.detach().numpy() for k, v in grads.items()}
