"""Seeded synthetic training sources with exactly known limits, and the user's own text.

    markov         decoder          order-k Markov chain; floor: its entropy rate
    masked-markov  encoder          masked tokens of the chain; Bayes accuracy and loss
    reverse, copy  encoder-decoder  string maps; floor: loss 0, exact match 1
    images         vit              templates in noise; Bayes accuracy and loss (exact posterior)
    --text FILE    decoder/encoder  character-level text; no known limit

``make_source`` builds one from command-line choices; ``source_from_dict`` rebuilds it from
the ``to_dict()`` form a checkpoint stores.
"""

from __future__ import annotations

from typing import Any

from formal_transformers.errors import SourceError
from formal_transformers.sources.base import Batch, Limit, Source
from formal_transformers.sources.images import TemplateImages
from formal_transformers.sources.markov import MarkovChain
from formal_transformers.sources.seq2seq import Seq2SeqTask
from formal_transformers.sources.tasks import MarkovLM, MaskedMarkov, Seq2Seq
from formal_transformers.sources.text import TextLM

SOURCE_ARCH = {"markov": "decoder", "masked-markov": "encoder",
               "reverse": "encoder-decoder", "copy": "encoder-decoder", "images": "vit"}
TEXT_ARCHS = ("decoder", "encoder", "modern-decoder")
# An architecture that trains on another's batches: the modern decoder (Algorithm 65) takes
# the decoder's (Algorithm 13's) next-token sequences.
BATCHES_OF = {"modern-decoder": "decoder"}

__all__ = ["SOURCE_ARCH", "Batch", "Limit", "Source", "make_source", "source_from_dict"]


def resolve_arch(source: str | None, text: str | None, arch: str | None) -> str:
    """The architecture a source trains; a SourceError when the pair does not fit."""
    if (source is None) == (text is None):
        raise SourceError("give exactly one of --source {" + ",".join(SOURCE_ARCH) + "} or "
                          f"--text FILE, got source={source!r}, text={text!r}")
    if text is not None:
        arch = arch or "decoder"
        if arch not in TEXT_ARCHS:
            raise SourceError(f"--text trains one of {TEXT_ARCHS}, not --arch {arch!r}")
        return arch
    if source not in SOURCE_ARCH:
        raise SourceError(f"unknown source {source!r}; known sources: {sorted(SOURCE_ARCH)}")
    if arch is not None and BATCHES_OF.get(arch) == SOURCE_ARCH[source]:
        return arch
    if arch is not None and arch != SOURCE_ARCH[source]:
        fits = sorted(s for s, a in SOURCE_ARCH.items() if a == arch)
        raise SourceError(f"source {source!r} trains the {SOURCE_ARCH[source]}, not --arch "
                          f"{arch!r}; sources for the {arch}: {fits or ['--text FILE']}")
    return SOURCE_ARCH[source]


def make_source(source: str | None = None, *, text: str | None = None, arch: str | None = None,
                seed: int = 0, **options: Any) -> Source:
    """A source from its name (or a text file) and options (S, k, alpha, length, ...)."""
    arch = resolve_arch(source, text, arch)
    if text is not None:
        return TextLM.from_file(text, arch=BATCHES_OF.get(arch, arch), seed=seed, **options)
    return source_from_dict({"name": source, "seed": seed, **options})


def source_from_dict(data: dict[str, Any]) -> Source:
    """Inverse of ``source.to_dict()``; a SourceError names an unknown source or option."""
    d = dict(data)
    name = d.pop("name", None)
    try:
        if name in ("markov", "masked-markov"):
            chain = MarkovChain(S=d.pop("S", 8), k=d.pop("k", 2), seed=d.get("seed", 0),
                                alpha=d.pop("alpha", 0.5))
            cls = MarkovLM if name == "markov" else MaskedMarkov
            return cls(chain, **d)
        if name in ("reverse", "copy"):
            task = Seq2SeqTask(name, S=d.pop("S", 10), max_len=d.pop("max_len", 16))
            return Seq2Seq(task, **d)
        if name == "text":
            return TextLM(**d)
        if name == "images":
            return TemplateImages(**d)
    except TypeError as exc:
        raise SourceError(f"source {name!r}: bad options {sorted(d)} ({exc})") from None
    raise SourceError(f"unknown source {name!r}; known sources: {sorted(SOURCE_ARCH)} or text")
