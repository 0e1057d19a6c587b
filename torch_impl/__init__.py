"""Fast PyTorch implementation of the spec for CPU and CUDA, in (batch, length, features) layout.

``REGISTRY`` maps every algorithm id of the spec catalogue to the torch function that computes
it; backward ids map to autograd-based gradient functions (torch_impl/backward.py).

Same function as reference_numpy (property reference.forward_agreement, spec/properties.md),
from the same canonical parameters: float64 within 1e-10, float32 within 1e-5 relative, and
bfloat16 within 2^-6 relative (|y - y_ref| <= 2^-6 (|y_ref| + max(1, max |y_ref|)) at unit-scale
inputs: bf16 keeps 8 significant bits, so one rounding is 2^-9 and a few chained roundings stay
below 2^-6). Tested in tests/torch_impl/test_agreement*.py.
"""

from torch_impl.alibi import alibi
from torch_impl.attention import attention, basic_attention, mh_attention
from torch_impl.backward import (
    attention_backward,
    layer_norm_backward,
    mhattention_backward,
    mlp_backward,
    positional_embedding_backward,
    token_embedding_backward,
    unembedding_backward,
)
from torch_impl.embeddings import positional_embedding, token_embedding
from torch_impl.gated_mlp import gated_mlp, gated_mlp_backward
from torch_impl.gq_attention import gq_attention, gq_attention_backward
from torch_impl.inference import d_inference, ed_inference
from torch_impl.layer_norm import layer_norm
from torch_impl.masks import block_sparse_mask, sliding_window_mask
from torch_impl.mlp import mlp
from torch_impl.models import (
    DTransformer,
    EDTransformer,
    ETransformer,
    d_transformer,
    e_transformer,
    ed_transformer,
)
from torch_impl.modern_decoder import (
    ModernDTransformer,
    modern_d_transformer,
    modern_d_transformer_backward,
)
from torch_impl.online_softmax import (
    online_softmax_attention,
    online_softmax_attention_backward,
)
from torch_impl.qk_norm import qk_norm, qk_norm_backward
from torch_impl.rmsnorm import rmsnorm, rmsnorm_backward
from torch_impl.rope import rope, rope_backward
from torch_impl.sampling import sample
from torch_impl.sinusoidal import sinusoidal_embedding
from torch_impl.softcap import softcap_attention, softcap_backward
from torch_impl.speculative import speculative_decoding
from torch_impl.training import d_training, e_training, ed_training
from torch_impl.unembedding import unembedding
from torch_impl.vision import (
    ViTClassifier,
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
    "mhattention_backward": mhattention_backward,
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

__all__ = ["REGISTRY", "DTransformer", "ETransformer", "EDTransformer", "ViTClassifier",
           "ModernDTransformer"]
