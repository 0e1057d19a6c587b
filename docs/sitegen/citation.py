"""CITATION.cff to BibTeX and APA (a small own renderer; CFF 1.2.0 fields only).

Handles persons (``family-names``, ``given-names``, ``name-particle``) and entities
(``name``), the software entry itself and the entries of ``references`` (articles, software).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_BIBTEX_TYPES = {"software": "software", "article": "article", "book": "book",
                 "conference-paper": "inproceedings", "report": "techreport"}


def _year(entry: Mapping[str, Any]) -> str | None:
    if entry.get("year"):
        return str(entry["year"])
    date = entry.get("date-released") or entry.get("date-published")
    return str(date)[:4] if date else None


def _bib_author(author: Mapping[str, Any]) -> str:
    if "family-names" in author:
        family = " ".join(filter(None, [author.get("name-particle"), author["family-names"]]))
        given = author.get("given-names")
        return f"{family}, {given}" if given else family
    return "{" + str(author["name"]) + "}"  # an entity: braces keep BibTeX from splitting it


def _apa_author(author: Mapping[str, Any]) -> str:
    if "family-names" in author:
        family = " ".join(filter(None, [author.get("name-particle"), author["family-names"]]))
        initials = " ".join(f"{part[0]}." for part in str(author.get("given-names", "")).split())
        return f"{family}, {initials}" if initials else family
    return str(author["name"])


def bibtex_key(entry: Mapping[str, Any]) -> str:
    """``<first author's family name or entity><year><first title word>``, lower case ASCII."""
    first = entry["authors"][0]
    who = first.get("family-names") or first.get("name", "anon")
    word = next((w for w in re.findall(r"[A-Za-z]+", entry["title"])
                 if w.lower() not in {"a", "an", "the", "on", "of"}), "")
    return re.sub(r"[^a-z0-9]", "", f"{who}{_year(entry) or ''}{word}".lower())


def bibtex(entry: Mapping[str, Any], kind: str = "software") -> str:
    """One BibTeX record for a CFF entry (the root, or one of its ``references``)."""
    kind = _BIBTEX_TYPES.get(entry.get("type", kind), "misc")
    fields = [("title", "{" + entry["title"] + "}"),
              ("author", " and ".join(_bib_author(a) for a in entry["authors"]))]
    if entry.get("journal"):
        fields.append(("journal", entry["journal"]))
    for cff, bib in (("version", "version"), ("doi", "doi"), ("url", "url"),
                     ("repository-code", "url"), ("license", "license")):
        if entry.get(cff) and bib not in dict(fields):
            fields.append((bib, str(entry[cff])))
    if _year(entry):
        fields.append(("year", _year(entry)))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@{kind}{{{bibtex_key(entry)},\n{body}\n}}"


def apa(entry: Mapping[str, Any], kind: str = "software") -> str:
    """One APA 7 reference for a CFF entry."""
    authors = [_apa_author(a) for a in entry["authors"]]
    names = authors[0] if len(authors) == 1 else ", ".join(authors[:-1]) + ", & " + authors[-1]
    year = _year(entry) or "n.d."
    title = entry["title"]
    if entry.get("type", kind) == "software":
        version = f" (Version {entry['version']})" if entry.get("version") else ""
        text = f"{names} ({year}). *{title}*{version} [Computer software]."
    else:
        venue = f" *{entry['journal']}*." if entry.get("journal") else ""
        text = f"{names} ({year}). {title}.{venue}"
    link = (f"https://doi.org/{entry['doi']}" if entry.get("doi")
            else entry.get("url") or entry.get("repository-code"))
    return f"{text} {link}" if link else text


def _tabs(entry: Mapping[str, Any], kind: str, cff_text: str | None) -> str:
    def tab(title: str, lang: str, text: str) -> str:
        body = "\n".join(f"    {line}" if line else "" for line in text.splitlines())
        return f'=== "{title}"\n\n    ```{lang}\n{body}\n    ```\n'

    tabs = [tab("BibTeX", "bibtex", bibtex(entry, kind)), tab("APA", "text", apa(entry, kind))]
    if cff_text is not None:
        tabs.append(tab("CFF", "yaml", cff_text))
    return "\n".join(tabs)


def cite_page(cff: Mapping[str, Any], cff_text: str) -> str:
    """cite.md: the software's citation (BibTeX | APA | CFF) and those of its references."""
    parts = ["# How to cite", " ".join(str(cff.get("message", "")).split()),
             "## This software", _tabs(cff, "software", cff_text)]
    refs = cff.get("references") or []
    if refs:
        parts.append("## The work it builds on")
    for ref in refs:
        parts += [f"### {ref['title']}", _tabs(ref, ref.get("type", "article"), None)]
    parts.append("Generated from `CITATION.cff` at build time; GitHub's *Cite this "
                 "repository* button reads the same file.")
    return "\n\n".join(parts) + "\n"
