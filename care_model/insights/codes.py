"""Code mappings and interaction patterns: adjacent counselor -> client code pairs per session.

A mapping (``data/codes/NAME.json``, format ``care-code-mapping/1``, documented in
``data/codes/README.md``) names the per-turn field that holds the counselor's code and the one
that holds the client's, and maps each corpus code to a coarse intention (counselor) or reaction
(client). A **pattern** is ``intention->reaction`` for a counselor turn followed directly by a
client turn, both mapped (a code the mapping does not list, ``n/a`` or a missing field: the pair
is not counted). A session's pattern proportions are its pattern counts over its counted pairs.

``client.field`` may be null with a ``default`` reaction: a corpus that codes only the counselor
(ESConv) then gives "intention->reply" patterns.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from care_model.core.errors import ValidationError

FORMAT = "care-code-mapping/1"
CODES_DIR = Path(__file__).resolve().parents[2] / "data" / "codes"
ARROW = "->"


@dataclass(frozen=True)
class CodeMapping:
    name: str
    title: str
    counselor_field: str
    counselor_codes: Mapping[str, str]
    client_field: str | None
    client_codes: Mapping[str, str]
    client_default: str | None = None
    reference: str | None = None
    sources: tuple[str, ...] = ()
    citation: str = ""
    notes: str = ""
    published: Mapping | None = None
    raw: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def intentions(self) -> list[str]:
        return list(dict.fromkeys(self.counselor_codes.values()))

    @property
    def reactions(self) -> list[str]:
        vals = list(dict.fromkeys(self.client_codes.values()))
        return vals if self.client_field else [self.client_default or "reply"]

    @property
    def patterns(self) -> list[str]:
        return [f"{i}{ARROW}{r}" for i in self.intentions for r in self.reactions]

    def intention(self, note: Mapping) -> str | None:
        return self.counselor_codes.get(str(note.get(self.counselor_field, "")).strip())

    def reaction(self, note: Mapping) -> str | None:
        if not self.client_field:
            return self.client_default or "reply"
        return self.client_codes.get(str(note.get(self.client_field, "")).strip())


def _bad(where: str, problem: str) -> ValidationError:
    return ValidationError(f"Code mapping {where}: {problem}",
                           "See data/codes/README.md for the format (care-code-mapping/1) and data/codes/annomi.json "
                           "for an example.")


def parse_mapping(data: Mapping, where: str = "(inline)") -> CodeMapping:
    if data.get("format") != FORMAT:
        raise _bad(where, f"format is {data.get('format')!r}, not {FORMAT!r}.")
    counselor, client = data.get("counselor") or {}, data.get("client") or {}
    if not counselor.get("field") or not isinstance(counselor.get("codes"), dict) or not counselor["codes"]:
        raise _bad(where, "'counselor' needs a 'field' and a non-empty 'codes' object.")
    if client.get("field") and not (isinstance(client.get("codes"), dict) and client["codes"]):
        raise _bad(where, "'client' has a 'field' but no 'codes'.")
    if not client.get("field") and not client.get("default"):
        raise _bad(where, "'client' needs a 'field' with 'codes', or a 'default' reaction when the corpus codes none.")
    m = CodeMapping(name=str(data.get("name") or where), title=str(data.get("title") or data.get("name") or where),
                    counselor_field=counselor["field"], counselor_codes=dict(counselor["codes"]),
                    client_field=client.get("field"), client_codes=dict(client.get("codes") or {}),
                    client_default=client.get("default"), reference=data.get("reference"),
                    sources=tuple(data.get("sources") or ()), citation=str(data.get("citation") or ""),
                    notes=str(data.get("notes") or ""), published=data.get("published"), raw=dict(data))
    if m.reference and m.reference not in m.patterns:
        raise _bad(where, f"reference {m.reference!r} is not one of its patterns ({', '.join(m.patterns)}).")
    return m


def load_mapping(name_or_path: str | Path, codes_dir: Path = CODES_DIR) -> CodeMapping:
    """A shipped mapping by name (``annomi``, ``esconv``, ``clientbehavior``) or a JSON file's path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = codes_dir / f"{name_or_path}.json"
    if not path.is_file():
        raise ValidationError(f"No code mapping {str(name_or_path)!r} ({path} does not exist).",
                              f"Use one of {', '.join(available_mappings(codes_dir))}, or the path of a JSON file "
                              "in the format of data/codes/README.md.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise _bad(str(path), f"not JSON ({err}).") from None
    return parse_mapping(data, str(path))


def available_mappings(codes_dir: Path = CODES_DIR) -> list[str]:
    return sorted(p.stem for p in codes_dir.glob("*.json"))


def mapping_for(sources: Iterable[str], codes_dir: Path = CODES_DIR) -> CodeMapping | None:
    """The shipped mapping whose ``sources`` include the most common session source; None if none does."""
    counts = Counter(sources)
    for src, _ in counts.most_common():
        for name in available_mappings(codes_dir):
            m = load_mapping(name, codes_dir)
            if src in m.sources:
                return m
    return None


def pattern_counts(annotations: Sequence[Mapping], speakers: Sequence[str], mapping: CodeMapping) -> Counter:
    """Counts of adjacent counselor -> client patterns in one session (turn t counselor, t+1 client)."""
    counts: Counter = Counter()
    n = min(len(annotations), len(speakers))
    for t in range(n - 1):
        if speakers[t] != "counselor" or speakers[t + 1] != "client":
            continue
        intent, react = mapping.intention(annotations[t] or {}), mapping.reaction(annotations[t + 1] or {})
        if intent and react:
            counts[f"{intent}{ARROW}{react}"] += 1
    return counts


def has_codes(annotations: Sequence[Mapping], mapping: CodeMapping) -> bool:
    """True when any turn carries a code the mapping knows (for the counselor)."""
    return any(mapping.intention(a or {}) for a in annotations)


def proportions(counts: Mapping[str, int], patterns: Sequence[str]) -> dict[str, float] | None:
    """Each pattern's share of the session's counted pairs; None when it has none."""
    total = sum(counts.get(p, 0) for p in patterns)
    if total == 0:
        return None
    return {p: counts.get(p, 0) / total for p in patterns}
