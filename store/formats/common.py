"""Shared pieces of the importers: where-in-the-file, reading text, speakers, checks.

Pure module (no tinydb). Every problem is raised as :class:`ImportFormatError` whose message
starts with the place (``file:line`` or ``file, record``), says what is wrong and how to fix it.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Iterable

from care_model.core.errors import ImportFormatError, ValidationError
from care_model.core.records import LANGUAGES, SPEAKERS, Label, Prediction, Session

ROLES = SPEAKERS  # ("counselor", "client")


@dataclass
class RatingRecord:
    """One rater's full WAI ratings of one session, read from a ratings file."""

    session_id: str
    rater: str  # "client" | "counselor"
    ratings: dict[int, int]
    where: str  # "file:line"


@dataclass
class ImportBatch:
    """Everything one ``read_files`` call read: validated, deduplicated, nothing written yet."""

    sessions: list[Session] = field(default_factory=list)
    ratings: list[RatingRecord] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    format: str = ""
    files: list[str] = field(default_factory=list)


@dataclass
class Parsed:
    """What one parser read from one file; each record paired with where it came from."""

    sessions: list[tuple[Session, str]] = field(default_factory=list)
    ratings: list[RatingRecord] = field(default_factory=list)
    predictions: list[tuple[Prediction, str]] = field(default_factory=list)
    labels: list[tuple[Label, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Context:
    """Options of one ``read_files`` call shared by the parsers."""

    speaker_map: dict[str, str] = field(default_factory=dict)  # normalised label -> role
    speaker_map_labels: dict[str, str] = field(default_factory=dict)  # normalised -> as written
    language: str | None = None
    used_map_keys: set[str] = field(default_factory=set)


# ----- places and errors ------------------------------------------------------------------
def at(path, line: int | None = None, record: str | None = None) -> str:
    """``file:line`` or ``file, record`` or ``file``: the start of every message."""
    where = str(path)
    if line is not None:
        where += f":{line}"
    if record:
        where += f", {record}"
    return where


def fail(where: str, problem: str, fix: str = "", **details) -> ImportFormatError:
    return ImportFormatError(f"{where}: {problem}", fix, where=where, **details)


def wrap_validation(err: ValidationError, where: str) -> ImportFormatError:
    return ImportFormatError(f"{where}: {err.problem}", err.fix, where=where)


# ----- reading text -----------------------------------------------------------------------
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")


def _guess_encoding(data: bytes) -> str | None:
    for enc, name in (("gb18030", "GBK/GB18030 (Chinese Windows)"), ("big5", "Big5 (traditional Chinese)")):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if _CJK_RE.search(text):
            return name
    try:
        data.decode("cp1252")
        return "Windows-1252 / Latin-1"
    except UnicodeDecodeError:
        return None


def read_text(path: Path) -> str:
    """The file as text: UTF-8 (a BOM is dropped), line ends normalised to ``\\n``.

    Non-UTF-8 bytes, UTF-16 files and empty files raise with the place and the fix.
    """
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fail(at(path), "the file is UTF-16 text, not UTF-8.",
                   "Save it as UTF-8 (in Excel: 'CSV UTF-8'; in an editor: encoding UTF-8), then import again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        guess = _guess_encoding(data)
        looks = f" It looks like {guess}." if guess else ""
        src = ("GB18030" if guess and guess.startswith("GBK")
               else "BIG5" if guess and guess.startswith("Big5") else "CP1252")
        raise fail(at(path, line),
                   f"not UTF-8 text: byte 0x{data[err.start]:02X} at column {col} cannot be decoded.{looks}",
                   f"Convert the file to UTF-8, e.g. `iconv -f {src} -t UTF-8 '{path}' > converted.txt`, "
                   "or re-save it as UTF-8 in your editor, then import the converted file.",
                   line=line) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise fail(at(path), "the file is empty.",
                   "Check that you picked the right file and that it was saved completely.")
    return text


def detect_language(texts: Iterable[str]) -> str:
    """``zh`` when CJK characters make up at least 30% of the letters, else ``en``."""
    cjk = latin = 0
    for t in texts:
        cjk += len(_CJK_RE.findall(t))
        latin += len(_LATIN_RE.findall(t))
    return "zh" if cjk and cjk >= 0.3 * (cjk + latin) else "en"


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def check_language(language: str | None, where: str = "language") -> str | None:
    if language is None:
        return None
    if language not in LANGUAGES:
        raise ImportFormatError(f"{where}: unknown language {language!r}.", f"Use one of {', '.join(LANGUAGES)}.")
    return language


# ----- speakers ---------------------------------------------------------------------------
ROLE_SYNONYMS = {
    "counselor": "counselor", "counsellor": "counselor", "therapist": "counselor", "咨询师": "counselor",
    "client": "client", "patient": "client", "来访者": "client",
}


def norm_label(label: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", label).split()).casefold()


def parse_speaker_map(text: str | None) -> dict[str, str]:
    """``"Dr. Lee=counselor,Patient=client"`` -> ``{"Dr. Lee": "counselor", "Patient": "client"}``.

    Entries are separated by ``,`` ``，`` ``;`` or new lines; label and role by ``=``. Roles are
    ``counselor`` or ``client`` (``counsellor``, ``therapist``, ``patient``, ``咨询师``,
    ``来访者`` are read as those). Labels match case-insensitively.
    """
    example = 'e.g. --speaker-map "Dr. Lee=counselor,Patient=client"'
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for piece in re.split(r"[,，;；\n]", text or ""):
        piece = piece.strip()
        if not piece:
            continue
        if "=" not in piece and "＝" not in piece:
            raise ImportFormatError(f"Speaker map entry {piece!r} has no '='.",
                                    f"Write each entry as LABEL=counselor or LABEL=client, {example}.")
        label, _, role = piece.replace("＝", "=").partition("=")
        label, role = label.strip(), role.strip()
        if not label:
            raise ImportFormatError(f"Speaker map entry {piece!r} has no label before '='.",
                                    f"Write each entry as LABEL=counselor or LABEL=client, {example}.")
        canon = ROLE_SYNONYMS.get(role.casefold())
        if canon is None:
            raise ImportFormatError(f"Speaker map entry {piece!r}: unknown role {role!r}.",
                                    f"Map every label to counselor or client, {example}.")
        key = norm_label(label)
        if key in seen and out[seen[key]] != canon:
            raise ImportFormatError(f"Speaker map maps {label!r} to both {out[seen[key]]} and {canon}.",
                                    "Keep one entry per label.")
        seen[key] = label
        out[label] = canon
    return out


def make_context(speaker_map: dict[str, str] | None, language: str | None) -> Context:
    ctx = Context(language=check_language(language, "language="))
    for label, role in (speaker_map or {}).items():
        canon = ROLE_SYNONYMS.get(str(role).strip().casefold())
        if not isinstance(label, str) or not label.strip() or canon is None:
            raise ImportFormatError(f"Speaker map entry {label!r}={role!r} is not a label mapped to a role.",
                                    'Map every label to counselor or client, e.g. {"Dr. Lee": "counselor", "Patient": '
                                    '"client"}.')
        key = norm_label(label)
        if key in ctx.speaker_map and ctx.speaker_map[key] != canon:
            raise ImportFormatError(f"Speaker map maps {label!r} to both {ctx.speaker_map[key]} and {canon}.",
                                    "Keep one entry per label.")
        ctx.speaker_map[key] = canon
        ctx.speaker_map_labels[key] = label.strip()
    return ctx


def _guess_role(label: str, position: int) -> str:
    low = norm_label(label)
    if any(k in low for k in ("dr", "doctor", "therap", "counsel", "coach", "interviewer",
                              "医生", "老师", "咨询", "治疗")):
        return "counselor"
    if any(k in low for k in ("patient", "client", "seeker", "user", "病人", "患者", "来访", "求助")):
        return "client"
    return "counselor" if position == 0 else "client"


class SpeakerResolver:
    """Turns the speaker labels of one file into roles and collects the unknown ones.

    The user's speaker map comes first (it can override a built-in alias), then the format's
    built-in aliases (matched case-insensitively).
    """

    def __init__(self, builtin: dict[str, str], ctx: Context, what: str = "speaker label"):
        self.builtin = {norm_label(k): v for k, v in builtin.items()}
        self.builtin_written = list(builtin)
        self.ctx = ctx
        self.what = what
        self.unknown: dict[str, list] = {}  # normalised -> [as written, count, first place]

    def role(self, label: str) -> str | None:
        key = norm_label(label)
        if key in self.ctx.speaker_map:
            self.ctx.used_map_keys.add(key)
            return self.ctx.speaker_map[key]
        return self.builtin.get(key)

    def is_known(self, label: str) -> bool:
        key = norm_label(label)
        return key in self.ctx.speaker_map or key in self.builtin

    def see(self, label: str, place: str) -> str | None:
        """The role of ``label``; an unknown label is remembered (count, first place)."""
        role = self.role(label)
        if role is None:
            entry = self.unknown.setdefault(norm_label(label), [label.strip(), 0, place])
            entry[1] += 1
        return role

    def raise_if_unknown(self, path: Path) -> None:
        if not self.unknown:
            return
        found = "; ".join(f"{shown!r} ({count} time{'s' if count != 1 else ''}, first at {place})"
                          for shown, count, place in self.unknown.values())
        suggestion = ",".join(f"{shown}={_guess_role(shown, i)}"
                              for i, (shown, _, _) in enumerate(self.unknown.values()))
        as_dict = ", ".join(f'"{shown}": "{_guess_role(shown, i)}"'
                            for i, (shown, _, _) in enumerate(self.unknown.values()))
        known = ", ".join(self.builtin_written)
        raise fail(at(path), f"unknown {self.what}{'s' if len(self.unknown) > 1 else ''}: {found}. "
                             f"Known without a map: {known}.",
                   f'Say who is who with --speaker-map "{suggestion}" '
                   f"(from Python: speaker_map={{{as_dict}}}); check the roles, they are a guess.",
                   labels={shown: count for shown, count, _ in self.unknown.values()})


# ----- field checks for records read from JSON ---------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "a whole number"),
    "int | None": (lambda v: v is None or _is_int(v), "a whole number or null"),
    "float | None": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
                     "a number or null"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "list[int]": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of whole numbers"),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "list[float] | None": (lambda v: v is None or (isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)), "a list of numbers or null"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
}


def check_record_fields(cls, data: dict, where: str, what: str, warnings: list[str],
                        skip: Iterable[str] = ()) -> None:
    """Check ``data`` against the dataclass ``cls``: required fields present, types right.

    Types come from the dataclass annotations, so a field added to the record is checked
    without a change here. Unknown keys are reported as warnings (they are not kept).
    """
    skip = set(skip)
    known = set()
    for f in fields(cls):
        known.add(f.name)
        if f.name in skip:
            continue
        required = f.default is MISSING and f.default_factory is MISSING
        if f.name not in data:
            if required:
                raise fail(where, f"{what} has no {f.name!r} field.",
                           f"Add \"{f.name}\" ({_CHECKS.get(str(f.type), (None, 'a value'))[1]}).")
            continue
        check = _CHECKS.get(str(f.type))
        if check and not check[0](data[f.name]):
            raise fail(where, f"{what}: field {f.name!r} is {type(data[f.name]).__name__} {data[f.name]!r:.60}, "
                              f"expected {check[1]}.",
                       f"Write {f.name!r} as {check[1]}.")
    extra = sorted(set(data) - known - skip)
    if extra:
        warnings.append(f"{where}: {what}: ignored unknown field{'s' if len(extra) > 1 else ''} "
                        f"{', '.join(repr(e) for e in extra)}.")


def validated(session: Session, where: str) -> Session:
    try:
        return session.validate()
    except ValidationError as err:
        raise wrap_validation(err, where) from None


def first_difference(a: dict, b: dict) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
