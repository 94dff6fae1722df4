"""Alliance instruments as data: the WAI-SR and any other form dropped in as JSON.

A form file (``care_model/core/forms/<id>.json``, or a folder named by ``CARE_FORMS_DIR``) holds the
items, their dimensions, the scale with its labels per language, and the wording per perspective
(client, counselor, observer, ...) and language. Adding the observer WAI-O-S or another language
is a new or edited JSON file, not code.

Pure module: no torch, no tinydb.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from care_model.core.errors import ValidationError

FORMS_DIR = Path(__file__).with_name("forms")
DEFAULT_FORM = "wai-sr"


@dataclass(frozen=True)
class Scale:
    min: int
    max: int
    labels: Mapping[str, Mapping[int, str]]  # language -> score -> label

    @property
    def points(self) -> list[int]:
        return list(range(self.min, self.max + 1))

    def label(self, score: int, language: str = "en") -> str:
        return self.labels.get(language, self.labels["en"])[score]


@dataclass(frozen=True)
class Dimension:
    key: str
    names: Mapping[str, str]
    item_ids: tuple[int, ...]

    def name(self, language: str = "en") -> str:
        return self.names.get(language, self.names.get("en", self.key))


@dataclass(frozen=True)
class Item:
    id: int
    dimension: str
    texts: Mapping[str, Mapping[str, str]]  # perspective -> language -> text


@dataclass(frozen=True)
class Form:
    id: str
    name: str
    scale: Scale
    dimensions: tuple[Dimension, ...]
    items: tuple[Item, ...]
    perspectives: tuple[str, ...]
    languages: tuple[str, ...]
    reference: str = ""
    _by_id: Mapping[int, Item] = field(default_factory=dict, repr=False, compare=False)

    # ----- lookups -------------------------------------------------------------------
    @property
    def item_ids(self) -> list[int]:
        return [item.id for item in self.items]

    @property
    def dimension_keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def item(self, item_id) -> Item:
        item_id = self.check_item(item_id)
        return self._by_id[item_id]

    def dimension(self, key: str) -> Dimension:
        for dim in self.dimensions:
            if dim.key == key:
                return dim
        raise ValidationError(
            f"Unknown dimension {key!r} for form {self.id}.",
            f"Use one of {', '.join(self.dimension_keys)}.",
        )

    def dimension_of(self, item_id) -> str:
        return self.item(item_id).dimension

    def item_text(self, item_id, perspective: str = "client", language: str = "en") -> str:
        item = self.item(item_id)
        if perspective not in item.texts:
            raise ValidationError(
                f"Form {self.id} has no {perspective!r} wording.",
                f"Use one of {', '.join(self.perspectives)}.",
            )
        texts = item.texts[perspective]
        if language not in texts:
            raise ValidationError(
                f"Form {self.id} has no {language!r} wording for item {item_id}.",
                f"Use one of {', '.join(sorted(texts))}, or add the translation to the form's JSON file.",
            )
        return texts[language]

    def scale_labels(self, language: str = "en") -> dict[int, str]:
        return dict(self.scale.labels.get(language, self.scale.labels["en"]))

    # ----- validation ----------------------------------------------------------------
    def check_item(self, item_id) -> int:
        as_int = None
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            as_int = item_id
        elif isinstance(item_id, str) and item_id.strip().isdigit():
            as_int = int(item_id.strip())
        if as_int is None or as_int not in self._by_id:
            raise ValidationError(
                f"Unknown item {item_id!r} for form {self.id}.",
                f"Items are numbered {self.item_ids[0]} to {self.item_ids[-1]}.",
            )
        return as_int

    def check_score(self, score, item_id=None) -> int:
        where = f" for item {item_id}" if item_id is not None else ""
        if isinstance(score, bool) or score is None:
            bad = True
        elif isinstance(score, float):
            bad = not score.is_integer()
        elif isinstance(score, (int,)):
            bad = False
        elif isinstance(score, str):
            bad = not score.strip().isdigit()
        else:
            bad = True
        value = None if bad else int(float(score))
        if value is None or not (self.scale.min <= value <= self.scale.max):
            raise ValidationError(
                f"Score {score!r}{where} is outside the {self.id} scale.",
                f"Use a whole number from {self.scale.min} to {self.scale.max} "
                f"({', '.join(f'{k} {v}' for k, v in self.scale_labels().items())}).",
            )
        return value

    def check_ratings(self, ratings: Mapping, require_all: bool = True) -> dict[int, int]:
        """Validate ``{item: score}``; with ``require_all`` every item must be present."""
        clean = {}
        for item_id, score in ratings.items():
            iid = self.check_item(item_id)
            clean[iid] = self.check_score(score, iid)
        if require_all:
            missing = [i for i in self.item_ids if i not in clean]
            if missing:
                raise ValidationError(
                    f"Missing items {missing} for a full {self.id} session.",
                    f"Give a score for all {len(self.items)} items.",
                )
        return dict(sorted(clean.items()))

    # ----- aggregation ---------------------------------------------------------------
    def dimension_scores(self, ratings: Mapping, require_all: bool = False) -> dict[str, float | None]:
        """Mean of each dimension's items; None for a dimension with no rated item.

        With ``require_all`` a dimension needs all of its items (the paper's definition).
        """
        clean = {self.check_item(k): float(v) for k, v in ratings.items() if v is not None}
        out: dict[str, float | None] = {}
        for dim in self.dimensions:
            vals = [clean[i] for i in dim.item_ids if i in clean]
            if not vals or (require_all and len(vals) < len(dim.item_ids)):
                out[dim.key] = None
            else:
                out[dim.key] = sum(vals) / len(vals)
        return out


def _form_from_dict(data: dict, source: str) -> Form:
    def need(key):
        if key not in data:
            raise ValidationError(f"Form file {source} lacks {key!r}.",
                                  "Follow the layout of care_model/core/forms/wai-sr.json.")
        return data[key]

    scale_d = need("scale")
    labels = {lang: {int(k): v for k, v in lab.items()} for lang, lab in scale_d["labels"].items()}
    scale = Scale(int(scale_d["min"]), int(scale_d["max"]), labels)
    dims = tuple(Dimension(d["key"], dict(d["name"]), tuple(int(i) for i in d["items"])) for d in need("dimensions"))
    item_dim = {i: d.key for d in dims for i in d.item_ids}
    items = []
    for raw in need("items"):
        iid = int(raw["id"])
        if iid not in item_dim:
            raise ValidationError(f"Form file {source}: item {iid} is in no dimension.",
                                  "List it under one dimension's items.")
        items.append(Item(iid, item_dim[iid], {p: dict(t) for p, t in raw["text"].items()}))
    form = Form(
        id=str(need("id")),
        name=str(data.get("name", data["id"])),
        scale=scale,
        dimensions=dims,
        items=tuple(items),
        perspectives=tuple(data.get("perspectives") or sorted({p for it in items for p in it.texts})),
        languages=tuple(data.get("languages") or ["en"]),
        reference=data.get("reference", ""),
        _by_id={it.id: it for it in items},
    )
    return form


def _form_dirs() -> list[Path]:
    dirs = [FORMS_DIR]
    extra = os.environ.get("CARE_FORMS_DIR")
    if extra:
        dirs.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return dirs


def available_forms() -> list[str]:
    return sorted({p.stem for d in _form_dirs() if d.is_dir() for p in d.glob("*.json")})


@lru_cache(maxsize=None)
def _load_form_cached(form_id: str, dirs: tuple[str, ...]) -> Form:
    for d in reversed(dirs):  # user folders override the bundled ones
        path = Path(d) / f"{form_id}.json"
        if path.is_file():
            return _form_from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
    raise ValidationError(
        f"Unknown form {form_id!r}.",
        f"Use one of {', '.join(available_forms())}, "
        f"or add {form_id}.json to care_model/core/forms/ or CARE_FORMS_DIR.",
    )


def load_form(form_id: str = DEFAULT_FORM) -> Form:
    return _load_form_cached(form_id, tuple(str(d) for d in _form_dirs()))


def wai_sr() -> Form:
    return load_form(DEFAULT_FORM)
