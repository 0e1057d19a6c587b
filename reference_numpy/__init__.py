"""Slow, literal, float64 NumPy mirror of the spec's pseudocode, line by line (spec/).

``REGISTRY`` maps every algorithm id of the spec catalogue to the function that mirrors it;
the traceability test checks that it covers the catalogue.
"""

from reference_numpy.alibi import alibi
from reference_numpy.architectures import d_transformer, e_transformer, ed_transformer
from reference_numpy.attention import attention, basic_attention, mh_attention
from reference_numpy.backward import (
    attention_backward,
    layer_norm_backward,
    mh_attention_backward,
    mlp_backward,
    positional_embedding_backward,
    token_embedding_backward,
    unembedding_backward,
)
from reference_numpy.embeddings import positional_embedding, token_embedding
from reference_numpy.gated_mlp import gated_mlp, gated_mlp_backward
from reference_numpy.gq_attention import gq_attention, gq_attention_backward
from reference_numpy.inference import d_inference, ed_inference
from reference_numpy.layer_norm import layer_norm
from reference_numpy.masks import block_sparse_mask, sliding_window_mask
from reference_numpy.mlp import mlp
from reference_numpy.modern_decoder import modern_d_transformer
from reference_numpy.modern_decoder_backward import modern_d_transformer_backward
from reference_numpy.online_softmax import (
    online_softmax_attention,
    online_softmax_attention_backward,
)
from reference_numpy.qk_norm import qk_norm, qk_norm_backward
from reference_numpy.rmsnorm import rmsnorm, rmsnorm_backward
from reference_numpy.rope import rope, rope_backward
from reference_numpy.sampling import sample
from reference_numpy.sinusoidal import sinusoidal_embedding
from reference_numpy.softcap import softcap_attention, softcap_backward
from reference_numpy.speculative import speculative_decoding
from reference_numpy.training import d_training, e_training, ed_training
from reference_numpy.unembedding import unembedding
from reference_numpy.vision import (
    patch_embedding,
    patch_extraction,
    vit_classifier,
    vit_classifier_backward,
)

REGISTRY = {
    "token_embedding": token_embedding,
    "positional_embedding": positional_embedding,
    "basic_attention": basic_attention,
    "attention": attention,
    "mhattention": mh_attention,
    "layer_norm": layer_norm,
    "unembedding": unembedding,
    "ed_transformer": ed_transformer,
    "e_transformer": e_transformer,
    "d_transformer": d_transformer,
    "ed_training": ed_training,
    "e_training": e_training,
    "d_training": d_training,
    "d_inference": d_inference,
    "ed_inference": ed_inference,
    "mlp": mlp,
    "sampling": sample,
    "speculative_decoding": speculative_decoding,
    "token_embedding_backward": token_embedding_backward,
    "positional_embedding_backward": positional_embedding_backward,
    "attention_backward": attention_backward,
    "mhattention_backward": mh_attention_backward,
    "layer_norm_backward": layer_norm_backward,
    "mlp_backward": mlp_backward,
    "unembedding_backward": unembedding_backward,
    "rope": rope,
    "rmsnorm": rmsnorm,
    "gated_mlp": gated_mlp,
    "rope_backward": rope_backward,
    "rmsnorm_backward": rmsnorm_backward,
    "gated_mlp_backward": gated_mlp_backward,
    "sinusoidal_embedding": sinusoidal_embedding,
    "alibi": alibi,
    "gq_attention": gq_attention,
    "sliding_window_mask": sliding_window_mask,
    "block_sparse_mask": block_sparse_mask,
    "qk_norm": qk_norm,
    "softcap": softcap_attention,
    "gq_attention_backward": gq_attention_backward,
    "qk_norm_backward": qk_norm_backward,
    "softcap_backward": softcap_backward,
    "online_softmax_attention": online_softmax_attention,
    "online_softmax_attention_backward": online_softmax_attention_backward,
    "patch_extraction": patch_extraction,
    "patch_embedding": patch_embedding,
    "vit_classifier": vit_classifier,
    "vit_classifier_backward": vit_classifier_backward,
    "modern_d_transformer": modern_d_transformer,
    "modern_d_transformer_backward": modern_d_transformer_backward,
}
