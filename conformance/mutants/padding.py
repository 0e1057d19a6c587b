"""Mutants of padded batches (spec: Algorithms 9-10, "Padded batches"): the bugs reported
again and again against batched transformer code, each in one hook of torch_impl's models
(``CanonicalModel.position_ids`` / ``padding_mask``, torch_impl/padding.py)."""

from __future__ import annotations

import torch

from conformance.adapters.torch_adapter import TorchAdapter, _np, _t
from torch_impl import padding, training
from torch_impl.inference import ed_decode_steps
from torch_impl.models import MODEL_CLASSES


class PaddingMutant(TorchAdapter):
    """Runs torch_impl's D and E transformers with ``position_ids`` / ``padding_mask``
    replaced by the mutant's."""

    algorithms = ("d_transformer", "e_transformer", "ed_transformer", "d_transformer_padded",
                  "e_transformer_padded", "ed_transformer_padded")
    only = ("batch.padding_invariance",)

    def position_ids(self, real):
        return padding.position_ids(real)

    def padding_mask(self, real):
        return padding.key_padding_mask(real)

    def cross_padding_mask(self, context_real, T):
        return padding.context_mask(context_real, T)

    def _model(self, config, params):
        base = MODEL_CLASSES[type(config)]
        mutant = self
        model_class = type(f"Mutated{base.__name__}", (base,), {
            "position_ids": lambda m, r: mutant.position_ids(r),
            "padding_mask": lambda m, r: mutant.padding_mask(r),
            "cross_padding_mask": lambda m, r, T: mutant.cross_padding_mask(r, T)})
        return model_class.from_canonical(config, params)

    def _padded(self, x, real, params, config):
        with torch.no_grad():
            logits = self._model(config, params)(_t(x), attention_mask=_t(real))
        return _np(torch.softmax(logits, dim=-1))

    def ed_transformer_padded(self, z, x, z_real, x_real, params, config):
        with torch.no_grad():
            logits = self._model(config, params)(_t(z), _t(x), _t(x_real), _t(z_real))
        return _np(torch.softmax(logits, dim=-1))


class PaddingMaskIgnored(PaddingMutant):
    """The attention mask is accepted but never reaches attention: real tokens attend to the
    padding (huggingface/transformers#3167: padded GPT-2 batches give other tokens)."""

    caught_by = ("batch.padding_invariance",)

    def padding_mask(self, real):
        return None


class PositionsNotShifted(PaddingMutant):
    """Positions are 0..l-1 whatever the padding, so a left-padded sequence starts at the
    position after its padding (transformers#21080, unsloth#3795: position_ids not computed
    from the attention mask)."""

    caught_by = ("batch.padding_invariance",)

    def position_ids(self, real):
        return torch.arange(real.shape[1]).expand(real.shape)


class PaddingMaskOnQueries(PaddingMutant):
    """The (B, l) padding mask is broadcast along the query axis instead of the key axis
    (``mask[:, None, None, :]`` in the wrong orientation): a real query sees every key,
    padding included, and a padded query sees none."""

    caught_by = ("batch.padding_invariance",)

    def padding_mask(self, real):
        l = real.shape[1]
        return real[:, None, None, :].expand(-1, 1, l, l)  # Mask[b, t_z, t_x] = real[b, t_x]


class CrossAttentionSeesContextPadding(PaddingMutant):
    """The encoder masks its padding but the decoder's cross-attention is given no mask (the
    encoder-attention mask is not passed on): every target token attends to the context's
    padding."""

    algorithms = ("ed_transformer", "ed_transformer_padded")
    caught_by = ("batch.padding_invariance",)

    def cross_padding_mask(self, context_real, T):
        return None


class LossCountsPadding(TorchAdapter):
    """The padded forward is right, but the training targets are not masked (labels copied
    from the input ids without ignoring the padding): the loss also predicts the padding
    tokens, and the real token after it."""

    algorithms = ("d_training", "d_training_padded")
    only = ("training.padding_invariance",)
    caught_by = ("training.padding_invariance",)

    def d_training_padded(self, x, real, params, config, eta):
        def loss_fn(model, batch):
            x, real = batch
            return training.token_log_loss(model(x, attention_mask=real)[:, :-1], x[:, 1:])
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]), _t(real[b:b + 1])) for b in range(len(x))])


class MaskedPaddingPredicted(TorchAdapter):
    """BERT-style masked-LM training whose masking decisions are not restricted to the real
    tokens (the padding's labels are never set to the ignore index; EleutherAI/gpt-neo#45,
    SoftMaskedBert#20): masked padding positions are predicted, so the padding tokens enter
    the loss and its gradients."""

    algorithms = ("e_training", "e_training_padded")
    only = ("training.padding_invariance",)
    caught_by = ("training.padding_invariance",)

    def e_training_padded(self, x, masked, real, params, config, eta, mask_token):
        def loss_fn(model, batch):
            x, masked, real = batch
            x_tilde = torch.where(masked, torch.full_like(x, mask_token), x)
            return training.token_log_loss(model(x_tilde, attention_mask=real), x, masked)
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]), _t(masked[b:b + 1]), _t(real[b:b + 1]))
                            for b in range(len(x))])


class MeanOverPaddedMasks(TorchAdapter):
    """Declares loss_reduction = "mean" and sums the loss over the real masked positions, but
    divides by every masked position of the padded row, padding included (the count taken
    from the masking decisions before the padding is removed)."""

    variants = {"loss_reduction": "mean"}
    algorithms = ("e_training", "e_training_padded")
    only = ("training.padding_invariance",)
    caught_by = ("training.padding_invariance",)

    def e_training_padded(self, x, masked, real, params, config, eta, mask_token):
        def loss_fn(model, batch):
            x, masked, real = batch
            x_tilde = torch.where(masked, torch.full_like(x, mask_token), x)
            total = training.token_log_loss(model(x_tilde, attention_mask=real), x,
                                            masked & real)
            return total / masked.sum(dim=1).clamp(min=1)
        return self._epoch(config, params, eta, loss_fn,
                           [(_t(x[b:b + 1]), _t(masked[b:b + 1]), _t(real[b:b + 1]))
                            for b in range(len(x))])


class EncoderMaskNotPassedInTraining(TorchAdapter):
    """Sequence-to-sequence training that passes the target's attention mask but not the
    source's (``model(input_ids, decoder_attention_mask=...)`` without ``attention_mask``):
    the encoder and the cross-attention attend to the context's padding."""

    algorithms = ("ed_training", "ed_training_padded")
    only = ("training.padding_invariance",)
    caught_by = ("training.padding_invariance",)

    def ed_training_padded(self, z, x, z_real, x_real, params, config, eta):
        def loss_fn(model, batch):
            z, x, x_real = batch
            pairs = x_real[:, :-1] & x_real[:, 1:]
            return training.token_log_loss(model(z, x, x_real)[:, :-1], x[:, 1:], pairs)
        return self._epoch(config, params, eta, loss_fn,
                           [tuple(_t(a[b:b + 1]) for a in (z, x, x_real))
                            for b in range(len(x))])


class ContextPositionsNotShifted(PositionsNotShifted):
    """Seq2seq generation from left-padded contexts whose encoder numbers the positions
    0..l_z-1 whatever the padding (the decoder's positions are right): a short context's
    tokens sit at the positions after its padding."""

    algorithms = ("ed_inference", "ed_decode")
    only = ("kv_cache.left_padding",)
    caught_by = ("kv_cache.left_padding",)

    def ed_decode(self, z, params, config, l_gen, bos_token, z_real=None):
        y, log_p = ed_decode_steps(self._model(config, params), _t(z), l_gen, bos_token,
                                   _t(z_real))
        return _np(y), _np(log_p)
