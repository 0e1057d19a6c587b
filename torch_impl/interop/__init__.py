"""Bridges between the canonical parameters and Hugging Face transformers state dicts.

hf_gpt2: GPT2LMHeadModel <-> D transformer (Algorithm 10).
hf_bert: BertModel / BertForMaskedLM <-> E transformer (Algorithm 9).
hf_llama: Llama/Mistral/Qwen2/Gemma2ForCausalLM <-> modern D transformer (Algorithm 65).
Each bridge is an explicit name-by-name mapping, used in both directions, and states where
the Hugging Face model differs from the spec (the config field that selects the variant).
"""
