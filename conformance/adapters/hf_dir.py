"""Bring your model: a ``transformers`` model saved with ``save_pretrained`` behind the adapter
protocol (``formal-transformers verify --impl hf:DIR``; spec: Algorithm 65).

The architecture class comes from ``config.json`` (``architectures[0]``, one of the Llama
family: torch_impl/interop/hf_llama.py); the declared variants are read from the same file by
the bridge (``config_from_hf``), so the suite checks the model against exactly what its config
claims -- including the two declarations ``transformers`` does not read itself (``rope_layout``
and, for Llama, ``sliding_window``). The model is loaded once from DIR; every case's canonical
parameters are written into it through the bridge (``canonical_to_hf``). ``constrain`` pins
every hyperparameter to the saved config, so the suite's cases have the saved model's sizes
and selections (keep test models small). The cached path uses the library's own KV cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conformance.adapter import Adapter
from formal_transformers.errors import AdapterError, FormalTransformersError
from formal_transformers.hyperparameters import ModernDTransformerConfig


class HFDirAdapter(Adapter):
    """A saved Llama / Mistral / Qwen2 / Gemma2 ``*ForCausalLM`` model, in float32 (the
    library computes its RMSNorm and rotary angles in float32 whatever the model's dtype, so
    a float64 copy of the model is not a float64 implementation)."""

    dtypes = ("float32",)
    algorithms = ("modern_d_transformer", "modern_d_transformer_cached", "count_parameters")

    def __init__(self, directory: str | Path):
        import transformers
        from transformers.utils import logging

        from torch_impl.interop.hf_llama import FAMILIES, config_from_hf

        logging.disable_progress_bar()
        logging.set_verbosity_error()
        self.directory = Path(directory)
        config_file = self.directory / "config.json"
        if not config_file.is_file():
            raise AdapterError(f"--impl hf:{directory}: no config.json in {self.directory} "
                               "(a directory written by save_pretrained is expected)")
        declared = (json.loads(config_file.read_text()).get("architectures") or [None])[0]
        if declared not in FAMILIES:
            raise AdapterError(f"--impl hf:{directory}: config.json declares architecture "
                               f"{declared!r}; supported: {', '.join(FAMILIES)}")
        self.family = declared
        try:
            self.model = getattr(transformers, declared).from_pretrained(
                self.directory, attn_implementation="eager", dtype=torch.float32).eval()
            self.config = config_from_hf(self.model.config, declared)
        except FormalTransformersError as exc:
            raise AdapterError(f"--impl hf:{directory}: {exc}") from None
        self.name = f"{declared} from {self.directory}"

    def constrain(self, algorithm, sizes):
        """Every hyperparameter is the saved model's."""
        if algorithm != "modern_d_transformer":
            return sizes
        fields = self.config.to_dict()
        fields.pop("arch")
        return fields

    def _load(self, params, config: ModernDTransformerConfig) -> None:
        from torch_impl.interop.hf_llama import hf_state_dict

        if config != self.config:
            raise AdapterError(f"{self.name} implements {self.config}, was asked for {config}")
        sd = hf_state_dict(config, params, self.family)
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (config.tie_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise AdapterError(f"{self.name}: the bridge's state dict does not fit the model "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def modern_d_transformer(self, x, params, config):
        self._load(params, config)
        with torch.no_grad():
            logits = self.model(input_ids=torch.from_numpy(x)).logits
        return torch.softmax(logits, dim=-1).numpy()

    def modern_d_transformer_cached(self, x, params, config, prefill):
        from transformers import DynamicCache

        self._load(params, config)
        ids, cache = torch.from_numpy(x), DynamicCache(config=self.model.config)
        with torch.no_grad():
            steps = [self.model(input_ids=ids[:, :prefill], cache=cache, use_cache=True).logits]
            for t in range(prefill, x.shape[1]):
                steps.append(self.model(input_ids=ids[:, t:t + 1], cache=cache,
                                        use_cache=True).logits)
        return torch.softmax(torch.cat(steps, dim=1), dim=-1).numpy()

    def count_parameters(self, algorithm, sizes):
        return sum(p.numel() for p in self.model.parameters())
