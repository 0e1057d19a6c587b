"""The spec's LaTeX as readable Unicode text for the terminal (`formal-transformers spec ID`).

``to_unicode`` reads the small LaTeX subset the spec's pseudocode, signatures and types use
(spec/notation.md) and writes plain Unicode: ``\\mathbb{R}^{d_x \\times \\ell_x}`` becomes
``ℝ^(dₓ × ℓₓ)``, ``Q \\gets W_q X + b_q \\mathbf{1}^\\top`` becomes ``Q ← W_q X + b_q 𝟏ᵀ``.

- Greek letters, ``\\ell`` and operators map to their characters (ℓ, θ, ←, ×, ∈, ≤, ⊤ ...);
  ``\\mathbb``, ``\\mathcal`` and ``\\mathbf{1}`` to the double-struck, script and bold forms.
- A sub- or superscript whose every character has a Unicode sub/superscript form is written
  with those (``\\ell_x`` -> ``ℓₓ``, ``^{-1}`` -> ``⁻¹``, ``^\\top`` -> ``ᵀ``); otherwise it
  stays readable as ``_qkv`` or ``^(d × ℓ)``.
- ``\\hat{x}`` and ``\\tilde{V}`` get combining accents (x̂, Ṽ); ``\\sqrt{x}`` is ``√x`` or
  ``√(...)``; ``\\frac{a}{b}`` is ``a/b`` (parenthesised where needed).
- Math delimiters ``$`` are dropped; text outside them is kept as it is.

The JSON output (`spec --json`) keeps the LaTeX: this is only for people at a terminal.
"""

from __future__ import annotations

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ",
    "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ",
    "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ",
    "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω",
}
SYMBOLS = {
    "ell": "ℓ", "gets": "←", "leftarrow": "←", "to": "→", "rightarrow": "→", "times": "×",
    "in": "∈", "notin": "∉", "mid": "|", "top": "⊤", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "ne": "≠", "neq": "≠", "dots": "…", "ldots": "…", "cdots": "⋯",
    "sum": "Σ", "prod": "Π", "infty": "∞", "odot": "⊙", "otimes": "⊗", "oplus": "⊕",
    "equiv": "≡", "cdot": "·", "cong": "≅", "approx": "≈", "nabla": "∇", "partial": "∂",
    "propto": "∝", "neg": "¬", "lnot": "¬", "sim": "∼", "bot": "⊥", "land": "∧", "lor": "∨",
    "wedge": "∧", "vee": "∨", "forall": "∀", "exists": "∃", "emptyset": "∅", "cup": "∪",
    "cap": "∩", "subseteq": "⊆", "setminus": "∖", "pm": "±", "circ": "∘", "colon": ":",
    "log": "log", "exp": "exp", "tanh": "tanh", "max": "max", "min": "min", "arg": "arg",
    "sin": "sin", "cos": "cos", "quad": "  ", "qquad": "    ", "lbrace": "{", "rbrace": "}",
    "langle": "⟨", "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "bmod": "mod", "mod": "mod", "Vert": "‖", "lVert": "‖", "rVert": "‖",
}
SPACING = {",": " ", ";": " ", ":": " ", " ": " ", "!": "", "quad": "  "}
ESCAPED = {"_": "_", "{": "{", "}": "}", "%": "%", "&": "&", "#": "#", "$": "$", "|": "‖"}
SIZING = ("big", "Big", "bigg", "Bigg", "left", "right", "bigl", "bigr", "Bigl", "Bigr",
          "displaystyle", "textstyle")
FONT_ARGS = ("mathrm", "text", "textrm", "mathit", "operatorname", "textit", "mathsf",
             "mathtt", "texttt", "boldsymbol", "bm")
DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "E": "𝔼", "P": "ℙ",
                 "1": "𝟙"}
SCRIPT = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                  "𝒜ℬ𝒞𝒟ℰℱ𝒢ℋℐ𝒥𝒦ℒℳ𝒩𝒪𝒫𝒬ℛ𝒮𝒯𝒰𝒱𝒲𝒳𝒴𝒵", strict=True))
BOLD = {**dict(zip("0123456789", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", strict=True))}
ACCENTS = {"hat": "\u0302", "widehat": "\u0302", "tilde": "\u0303", "widetilde": "\u0303",
           "bar": "\u0304", "overline": "\u0304", "vec": "\u20d7", "dot": "\u0307"}
SUB = dict(zip("0123456789+-=()aehijklmnoprstuvxβγρφχ",
               "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪ", strict=True))
SUP = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyzTβγδθφχ⊤",
               "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᵀᵝᵞᵟᶿᵠᵡᵀ", strict=True))


class _Parser:
    def __init__(self, tex: str):
        self.s, self.i = tex, 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def sequence(self, stop: str = "") -> str:
        out: list[str] = []
        while self.i < len(self.s) and self.peek() != stop:
            out.append(self.atom(out))
        if stop and self.peek() == stop:
            self.i += 1
        return "".join(out)

    def group(self) -> str:
        """One argument: ``{...}``, a command, or one character (spaces skipped)."""
        while self.peek() == " ":
            self.i += 1
        if self.peek() == "{":
            self.i += 1
            return self.sequence("}")
        if self.peek() == "\\":
            return self.atom([])
        ch = self.peek()
        self.i += 1
        return ch

    def command(self) -> str:
        self.i += 1  # the backslash
        start = self.i
        if self.i < len(self.s) and not self.s[self.i].isalpha():
            self.i += 1
            return self.s[start]
        while self.i < len(self.s) and self.s[self.i].isalpha():
            self.i += 1
        return self.s[start:self.i]

    def atom(self, before: list[str]) -> str:
        ch = self.peek()
        if ch == "\\":
            return self.macro(self.command())
        if ch == "{":
            self.i += 1
            return self.sequence("}")
        if ch in "_^":
            self.i += 1
            arg = self.script_arg()
            return script(arg, SUB if ch == "_" else SUP, ch)
        if ch == "$":
            self.i += 1
            return ""
        if ch == "~":
            self.i += 1
            return " "
        self.i += 1
        return ch

    def script_arg(self) -> str:
        while self.peek() == " ":
            self.i += 1
        if self.s.startswith("\\top", self.i):
            self.i += 4
            return "⊤"
        return self.group()

    def macro(self, name: str) -> str:
        if name in GREEK:
            return GREEK[name]
        if name in SYMBOLS:
            return SYMBOLS[name]
        if name in ESCAPED:
            return ESCAPED[name]
        if name in SPACING:
            return SPACING[name]
        if name in SIZING:
            return ""
        if name in FONT_ARGS:
            return self.group()
        if name == "mathbb":
            arg = self.group()
            return "".join(DOUBLE_STRUCK.get(c, c) for c in arg)
        if name == "mathcal" or name == "mathscr":
            arg = self.group()
            return "".join(SCRIPT.get(c, c) for c in arg)
        if name == "mathbf":
            arg = self.group()
            return "".join(BOLD.get(c, c) for c in arg)
        if name in ACCENTS:
            arg = self.group()
            return arg + ACCENTS[name] if len(arg) == 1 else f"{arg}{ACCENTS[name]}"
        if name == "sqrt":
            arg = self.group()
            return "√" + (arg if _simple(arg) else f"({arg})")
        if name in ("frac", "tfrac", "dfrac"):
            num, den = self.group(), self.group()
            return f"{_paren(num)}/{_paren(den)}"
        return "\\" + name  # unknown: keep it visible rather than guess


def _simple(text: str) -> bool:
    return len(text) <= 1 or text.replace("_", "").isalnum()


def _paren(text: str) -> str:
    simple = _simple(text) or (text.startswith("√(") and text.endswith(")")
                               and text.count("(") == 1)
    return text if simple else f"({text})"


def script(arg: str, table: dict[str, str], mark: str) -> str:
    """A sub- or superscript: Unicode forms when all exist, else ``_arg`` / ``^(arg)``."""
    if arg and all(c in table for c in arg):
        return "".join(table[c] for c in arg)
    if mark == "_":
        return "_" + (arg if " " not in arg else f"({arg})")
    return "^" + (arg if " " not in arg and not set(arg) & set("+-*/=,") else f"({arg})")


def to_unicode(tex: str) -> str:
    """``tex`` (Markdown text with ``$...$`` math, or bare LaTeX) as plain Unicode text."""
    return _Parser(tex).sequence()
