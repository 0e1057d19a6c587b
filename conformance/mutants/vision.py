"""Mutants of the vision path (spec: Algorithms 75-78), each modelled on a mistake seen in
ViT code (spec/properties.md, patches.*)."""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from conformance.adapters.torch_adapter import TorchAdapter
from torch_impl.vision import ViTClassifier


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


class PatchMutant(TorchAdapter):
    """Replaces patch extraction by ``broken(I, P)`` on tensors, in patch_extraction and in
    everything built on it (the patch embedding and the classifier)."""

    only = ("patch_extraction", "patch_embedding", "vit_classifier")

    def broken(self, I: torch.Tensor, P: int) -> torch.Tensor:
        raise NotImplementedError

    def patch_extraction(self, I, patch_size):
        return self.broken(_t(I), patch_size).numpy()

    def patch_embedding(self, I, params, patch_size):
        rows = self.broken(_t(I), patch_size)
        p = {k: _t(v) for k, v in params.items()}
        X = torch.cat([p["e_cls"].expand(rows.shape[0], 1, -1),
                       torch.nn.functional.linear(rows, p["W_pe"], p["b_pe"])], dim=1)
        return (X + p["W_p"].T if "W_p" in p else X).numpy()


class GridTransposed(PatchMutant):
    """The patch grid read column-major (n = c n_h + r): the roles of h and w swapped in the
    rearrange pattern, "b c (h p1) (w p2) -> b (w h) ..." (Alg 75 L4)."""

    caught_by = ("patches.convolution_identity", "reference.forward_agreement")
    only = ("patch_extraction",)

    def broken(self, I, P):
        return rearrange(I, "b c (nh p1) (nw p2) -> b (nw nh) (c p1 p2)", p1=P, p2=P)


class ChannelLastPatches(PatchMutant):
    """Channel-last inside a patch, (p1 p2 c), as vit-pytorch's Rearrange writes it, while
    the channel-first order of a convolution kernel is declared (Alg 75 L6)."""

    caught_by = ("patches.convolution_identity", "reference.forward_agreement")
    only = ("patch_extraction",)

    def broken(self, I, P):
        return rearrange(I, "b c (nh p1) (nw p2) -> b (nh nw) (p1 p2 c)", p1=P, p2=P)


class OverlappingPatches(PatchMutant):
    """Windows cut at stride P - 1 (an off-by-one in the slice start): neighbouring patches
    share a row and a column, the last row and column are never read."""

    caught_by = ("patches.bijection", "reference.forward_agreement")
    only = ("patch_extraction",)

    def broken(self, I, P):
        B, C, h, w = I.shape
        n_h, n_w, s = h // P, w // P, max(P - 1, 0)
        rows = [I[:, :, r * s:r * s + P, c * s:c * s + P].reshape(B, -1)
                for r in range(n_h) for c in range(n_w)]
        return torch.stack(rows, dim=1)


class _EmbeddingMutant(TorchAdapter):
    """Adds the positional table its own wrong way to the correct unpositioned embedding."""

    only = ("patch_embedding",)

    def patch_embedding(self, I, params, patch_size):
        unpositioned = {k: v for k, v in params.items() if k != "W_p"}  # positions = none
        X = super().patch_embedding(I, unpositioned, patch_size)
        return self.misplace(X, params.get("W_p"))

    def misplace(self, X, W_p):
        raise NotImplementedError


class ClassTokenLast(_EmbeddingMutant):
    """The class token appended after the patches instead of put in front (Alg 76 L3-4)."""

    caught_by = ("patches.class_token_first", "reference.forward_agreement")

    def misplace(self, X, W_p):
        X = np.concatenate([X[:, 1:], X[:, :1]], axis=1)
        return X if W_p is None else X + W_p.T


class PositionsSkipClassToken(_EmbeddingMutant):
    """Positional embeddings added to the patch tokens only, shifted by one: patch n gets
    W_p[:, n] and the class token none (an N-column table where N + 1 is specified)."""

    caught_by = ("patches.class_token_first", "reference.forward_agreement")

    def misplace(self, X, W_p):
        if W_p is not None:
            X[:, 1:] += W_p[:, :-1].T
        return X


class _ModelMutant(TorchAdapter):
    only = ("vit_classifier",)

    def model(self, config, params) -> ViTClassifier:
        return ViTClassifier.from_canonical(config, params)

    def vit_classifier(self, I, params, config):
        with torch.no_grad():
            return torch.softmax(self.forward(self.model(config, params), _t(I)), -1).numpy()

    def forward(self, m: ViTClassifier, I: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class CausalEncoder(_ModelMutant):
    """The encoder layers keep the decoder's causal mask (a GPT block reused for ViT): the
    class token, at position 0, then sees only itself and p no longer depends on the image
    (still invariant to permuting the patches: only agreement shows it)."""

    caught_by = ("reference.forward_agreement",)

    def forward(self, m, I):
        for layer in m.layers:
            layer.causal = True
        return m(I)


class ReadsLastToken(_ModelMutant):
    """The head reads the last token's state, as GPT-style sequence classifiers do
    (GPT2ForSequenceClassification), where the class token's (column 0) is specified: with
    positions none, p then depends on which patch comes last."""

    caught_by = ("patches.permutation_invariance", "reference.forward_agreement")

    def forward(self, m, I):
        X = m.embed_images(I)
        for layer in m.layers:
            X = layer(X)
        return m.head(m.ln_f(X[:, -1]))


class MeanPoolReadout(_ModelMutant):
    """The head reads the mean of the patch tokens (the "gap" pooling of some ViTs) where the
    class token's state is specified (Alg 77 L7)."""

    caught_by = ("reference.forward_agreement",)

    def forward(self, m, I):
        X = m.embed_images(I)
        for layer in m.layers:
            X = layer(X)
        return m.head(m.ln_f(X[:, 1:].mean(dim=1)))


class ClassTokenGradientDropped(TorchAdapter):
    """The backward leaves e_cls without its gradient (the class token built as a constant
    buffer, not a parameter, so it never trains)."""

    caught_by = ("gradient.finite_difference", "reference.gradient_agreement")
    only = ("vit_classifier_backward",)

    def vit_classifier_backward(self, I, params, config, dp):
        grads = super().vit_classifier_backward(I, params, config, dp)
        grads["e_cls"] = np.zeros_like(grads["e_cls"])
        return grads


class ReturnsLogits(_ModelMutant):
    """The classifier returns the head's logits, not the softmax over the classes (the
    forward of ViTForImageClassification, read as probabilities)."""

    caught_by = ("structure.distribution", "reference.forward_agreement")

    def vit_classifier(self, I, params, config):
        with torch.no_grad():
            return self.model(config, params)(_t(I)).numpy()


class HeadWithoutBias(TorchAdapter):
    """The classification head built as nn.Linear(d_e, K, bias=False): K parameters short of
    the spec's W_head, b_head."""

    caught_by = ("memory.parameter_count",)
    only = ("vit_classifier",)

    def count_parameters(self, algorithm, sizes):
        count = super().count_parameters(algorithm, sizes)
        return count - sizes.n_classes if algorithm == "vit_classifier" else count
