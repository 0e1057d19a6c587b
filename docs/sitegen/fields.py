"""The spec's symbol and type fields as HTML: TeX as math, prose as prose, code names as code.

A signature's ``symbol`` and ``type`` fields are written as TeX (``\\mathbb{R}^{d_e}``) as a
rule, but some are English (``canonical parameters of DTransformer (Algorithm 10)``, ``positive
integers, with H dividing d_e``) and some are code names (``numpy.random.Generator``). Typeset
as math, prose loses its spaces and turns italic ("canonicalparametersof..."). :func:`field`
decides per field, with no per-file rule:

- a code name (a dotted or CamelCase identifier) becomes ``<code>``;
- TeX becomes math, split at its top-level commas so that a list of types can wrap;
- prose (English words outside TeX commands, sub/superscripts and text groups) stays text,
  and only its mathematical pieces (``H``, ``d_attn = d_e / H``, ``[N_V]``) become math;
  identifiers with underscores (``per_head``) and quoted strings become code.

A piece of a prose field becomes math only if it is safe TeX (balanced braces, no TeX special
characters); otherwise it is shown as text, so that no field can break the strict build.
"""

from __future__ import annotations

import html
import re

from sitegen.html import inline, math

# Groups whose content is text, not math: removed before looking for words.
_TEXT_GROUP = re.compile(r"\\(?:text\w*|math(?:rm|sf|tt|it|bf)|operatorname\*?|mbox)\s*\{[^{}]*\}")
_SCRIPT = re.compile(r"[_^](?:\{[^{}]*\}|\\?[A-Za-z0-9])")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_PROSE = (re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}"), re.compile(r"[A-Za-z]{4,}"))
_CODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
                        r"|(?:[A-Z][a-z0-9]*){2,}[A-Za-z0-9]*")
# An English word in a prose field: two letters or more, not a TeX command, not inside a
# sub/superscript or a brace group, not glued to an identifier (``per_head``, ``f(x)``).
_WORD = re.compile(r"(?<![\\\w{^])(?:[A-Za-z][A-Za-z]+(?:-[A-Za-z]+)*|a(?= [A-Za-z]{2}))"
                   r"(?![\w{^(])")
# Code inside a prose field: a quoted string, or an identifier with an underscore whose stem is
# a word (``per_head``, ``half\_split``; ``d_attn`` is math).
_CODE_PIECE = re.compile(r'"[^"]*"|(?<![\\\w])[A-Za-z]{2,}(?:\\?_[A-Za-z0-9]+)+\b')
_LEADING, _TRAILING = " ,;:)]", " ,;:(["
_UNSAFE = re.compile(r'[$#%&~"]|\\$')


def _stripped(tex: str) -> str:
    """``tex`` without text groups, sub/superscripts and commands: what is left are words."""
    previous = None
    while previous != tex:
        previous, tex = tex, _SCRIPT.sub(" ", _TEXT_GROUP.sub(" ", tex))
    return _COMMAND.sub(" ", tex)


def is_prose(value: str) -> bool:
    """Whether a field is English rather than TeX: words of letters outside TeX's own."""
    left = _stripped(value)
    return any(p.search(left) for p in _PROSE)


def is_code_name(value: str) -> bool:
    """``numpy.random.Generator``, ``DTransformerConfig``: a name in the code, not math."""
    return "\\" not in value and _CODE_NAME.fullmatch(value.strip()) is not None


def top_level_split(tex: str, sep: str = ",") -> list[str]:
    """``tex`` split at the ``sep`` characters outside any bracket or brace."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(tex):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth <= 0 and (i == 0 or tex[i - 1] != "\\"):
            parts.append(tex[start:i])
            start = i + 1
    parts.append(tex[start:])
    return [p.strip() for p in parts if p.strip()]


def _balanced(tex: str) -> bool:
    depth = 0
    for i, ch in enumerate(tex):
        if ch in "{}" and i and tex[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _math_piece(text: str) -> str:
    """A piece of a prose field between words: math where it is safe TeX, else text."""
    lead = len(text) - len(text.lstrip(_LEADING))
    core = text[lead:]
    trail = len(core) - len(core.rstrip(_TRAILING))
    core = core[:len(core) - trail] if trail else core
    # keep brackets that close what the core opens ([0, 1), (0, 1]), move the others out
    while core and core[-1] in ")]" and sum(core.count(c) for c in "([") < \
            sum(core.count(c) for c in ")]"):
        core, trail = core[:-1], trail + 1
    while core and core[0] in "([" and sum(core.count(c) for c in "([") > \
            sum(core.count(c) for c in ")]"):
        core, lead = core[1:], lead + 1
    head, tail = text[:lead], text[len(text) - trail:] if trail else ""
    if not core or re.fullmatch(r"\d+(?:\.\d+)?", core) or _UNSAFE.search(core) or \
            not _balanced(core):
        return html.escape(text, quote=False)
    tex = re.sub(r"(?<=[A-Za-z])_([A-Za-z0-9]{2,})", r"_{\1}", core)  # d_attn -> d_{attn}
    return html.escape(head, quote=False) + math(tex) + html.escape(tail, quote=False)


def _code(piece: str) -> str:
    name = piece.strip('"').replace("\\_", "_")
    return f"<code>{html.escape(name)}</code>"


def prose(value: str) -> str:
    """A prose field: words as text, the math between them as math, identifiers as code."""
    out, pos = [], 0
    tokens = sorted([(m.start(), m.end(), "code") for m in _CODE_PIECE.finditer(value)] +
                    [(m.start(), m.end(), "word") for m in _WORD.finditer(value)])
    for start, end, kind in tokens:
        if start < pos:
            continue  # a word inside a code piece
        if start > pos:
            out.append(_math_piece(value[pos:start]))
        piece = value[start:end]
        out.append(_code(piece) if kind == "code" else html.escape(piece, quote=False))
        pos = end
    if pos < len(value):
        out.append(_math_piece(value[pos:]))
    return "".join(out)


def field(value: str) -> str:
    """A symbol or type field of the spec as HTML (see the module docstring)."""
    value = value.strip()
    if "$" in value or "`" in value:
        return inline(value)
    if is_code_name(value):
        return f"<code>{html.escape(value)}</code>"
    if is_prose(value):
        return f'<span class="ft-prose">{prose(value)}</span>'
    return ", ".join(math(part) for part in top_level_split(value))


def declaration(symbol: str, type_: str) -> str:
    """``symbol ∈ type`` for the algorithm box: one formula when both are plain TeX."""
    if not ("$" in type_ or "`" in type_ or is_code_name(type_) or is_prose(type_)):
        return math(f"{symbol} \\in {type_}")
    return math(symbol + " \\in") + " " + field(type_)
