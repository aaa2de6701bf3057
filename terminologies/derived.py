"""Synonyms derived from SNOMED CT procedure names, and spelling variants for matching.

SNOMED CT's fully specified names describe a procedure ("Endoscopy of urinary bladder",
"Kidney excision", "Administration of anesthesia"), while notes name it the way clinicians
speak ("cystoscopy", "nephrectomy", "anesthesia"). A source with only fully specified names (the
Global Patient Set) leaves the lexical linker to guess between "Local anesthesia" and the
generic concept. :func:`derive_procedure_synonyms` writes the usual short forms from the name
itself, with four rules:

- **naming boilerplate**: "X procedure" -> "X" when X names an act ("Puncture procedure" ->
  "puncture"; not "Surgical procedure", "Outpatient procedure"), "Administration of X" -> "X
  administration" (unless X has a phrase of its own: "... via intravenous route"), and "X" too
  when X names the act rather than a substance ("anesthesia", not "antibiotic"), "Diagnostic X"
  -> "X";
- **equivalent names** (:data:`EQUIVALENTS`): "Computerized axial tomography of brain" ->
  "computed tomography of brain", "ct of brain"; "Ultrasonography of breast" -> "ultrasound of
  breast"; "Excision of neoplasm" -> "resection of neoplasm", "excision of tumor";
- **word order**: "<act> of/on <object>" (one action word, an object of up to three words and
  no phrase of its own: not "Insertion of stent into ureter") ->
  "<object> <act>" ("Transplant of kidney" -> "kidney transplant"), and "Operation on X" -> "X
  surgery";
- **neoclassical compounds**: "<action> of <organ>" and "<organ> <action>" (optionally after
  "partial", "total" or "radical") -> the Greek/Latin compound of :data:`ROOTS` and
  :data:`ACTIONS` ("Incision of trachea" -> "tracheotomy", "Urinary bladder excision" ->
  "cystectomy", "Reconstruction of nose" -> "rhinoplasty").

The default index adds them as ``synonym`` rows with source ``derived``; the linker reads
them, the NER terminology matcher and the lay vocabulary do not (:data:`LINKING_ONLY_SOURCES`,
which also holds the team's non-English abbreviations, procedure synonyms and narrower procedures).

:func:`americanize` maps British spellings to American ones word by word ("haemodialysis" ->
"hemodialysis", "oesophagectomy", "anaesthesia", "tumour", "catheterisation"); the lexical
retriever applies it to both the index's terms and the query, so either spelling finds the
other.
"""

from __future__ import annotations

import re

# synonym sources only the linker reads: procedure short forms derived from names ("puncture",
# "anesthesia"), non-English abbreviations ("TC", "RM", "PL") and the team's procedure synonyms and
# narrower procedures in the default index. The NER
# matcher and the lay vocabulary skip them: as entity surface forms they would be new to the NER
# and often ambiguous in English notes
LINKING_ONLY_SOURCES = frozenset({"derived", "medtext-intl", "medtext-syn", "medtext-narrow"})

# organ (as SNOMED CT names it, lower case) -> combining form
ROOTS = {
    "urinary bladder": "cyst", "bladder": "cyst", "kidney": "nephr", "stomach": "gastr",
    "liver": "hepat", "gallbladder": "cholecyst", "colon": "col", "appendix": "append",
    "uterus": "hyster", "ovary": "oophor", "fallopian tube": "salping", "trachea": "trache",
    "larynx": "laryng", "pharynx": "pharyng", "bronchus": "bronch", "lung": "pneumon",
    "breast": "mast", "prostate": "prostat", "thyroid gland": "thyroid", "thyroid": "thyroid",
    "spleen": "splen", "esophagus": "esophag", "duodenum": "duoden", "jejunum": "jejun",
    "ileum": "ile", "cecum": "cec", "rectum": "proct", "pancreas": "pancreat", "joint": "arthr",
    "vein": "phleb", "artery": "arteri", "nose": "rhin", "tympanic membrane": "tympan",
    "eyelid": "blephar", "skull": "crani", "cranium": "crani", "testis": "orchi", "vagina": "colp",
    "ureter": "ureter", "urethra": "urethr", "tonsil": "tonsill", "adenoid": "adenoid",
    "lamina of vertebra": "lamin", "vertebral lamina": "lamin", "bone": "oste", "tendon": "ten",
    "nerve": "neur", "cornea": "kerat", "iris": "irid", "lymph node": "lymphaden",
    "abdomen": "lapar", "abdominal wall": "lapar", "thorax": "thorac", "chest wall": "thorac",
    "pleura": "pleur", "pericardium": "pericardi", "heart": "cardi", "tongue": "gloss",
    "gum": "gingiv", "small intestine": "enter", "intestine": "enter", "large intestine": "col",
    "common bile duct": "choledoch", "bile duct": "choledoch", "biliary tract": "cholangi",
    "nail": "onych", "muscle": "my", "ear": "ot", "eye": "ophthalm", "mastoid": "mastoid",
    "sinus": "sinus", "epididymis": "epididym", "vas deferens": "vas", "meniscus": "menisc",
    "synovium": "synov", "omentum": "oment", "umbilicus": "omphal", "vulva": "vulv",
}
# action word(s) in the name -> suffix
ACTIONS = {
    "excision": "ectomy", "resection": "ectomy", "removal": "ectomy", "incision": "otomy",
    "endoscopy": "oscopy", "endoscopic examination": "oscopy", "reconstruction": "oplasty",
    "plastic repair": "oplasty", "suture": "orrhaphy", "fixation": "opexy", "puncture": "ocentesis",
    "radiography": "ography",
}
# combining forms that differ by suffix
_ROOT_FOR = {("colon", "oscopy"): "colon", ("large intestine", "oscopy"): "colon",
             ("breast", "oplasty"): "mamm", ("breast", "ography"): "mamm"}
_QUALIFIERS = ("partial", "total", "radical", "complete", "subtotal")
# "X procedure" -> "X" only when X ends like the name of an act ("puncture", "dialysis",
# "physical examination"), not an adjective or a thing ("surgical", "outpatient", "sano")
_ACTION_NOUN_END = ("tion", "sion", "sis", "ery", "try", "py", "my", "ure", "phy", "ing", "ment", "ia")
_ACTION_RE = "|".join(sorted(map(re.escape, ACTIONS), key=len, reverse=True))
_OF = re.compile(rf"^(?:(?P<q>{'|'.join(_QUALIFIERS)}) )?(?P<a>{_ACTION_RE}) of (?:the )?(?P<o>.+?)(?: structure)?$")
# names of the same imaging or surgical act; a procedure name with one of them also gets the others
EQUIVALENTS = (
    ("computerized axial tomography", "computed tomography", "ct"),
    ("magnetic resonance imaging", "mri"),
    ("ultrasonography", "ultrasound", "sonography"),
    ("radiologic examination", "radiography", "x-ray"),
    ("excision", "resection"),
    ("neoplasm", "tumor"),
)
# words that start a phrase the object keeps after it ("stent into ureter", "cataract by
# phacoemulsification", "vaccine ... containing only ..."): fronted, the phrase reads garbled
_POSTMODIFIER = r"(?:of|on|into|from|in|at|for|by|after|via|with|to|containing|based)"
_HAS_POSTMODIFIER = re.compile(rf"\b{_POSTMODIFIER}\b|,")
# one action word "of"/"on" a short object: the object first, as notes say it
_REORDER = re.compile(r"^(?P<a>[a-z]+(?:tion|sion|sis|ment|ure|ing|ectomy|otomy|ostomy|oscopy|plasty|graphy)|"
                      r"transplant|operation|excision|repair|removal|biopsy|examination|insertion|scan|"
                      r"resection|amputation|ct|mri|ultrasound|x-ray) (?:of|on) (?:the )?"
                      rf"(?P<o>[a-z][a-z0-9-]*(?: (?!{_POSTMODIFIER} |procedure$)[a-z0-9-]+){{0,2}}?)(?: structure)?$")
_ORGAN_FIRST = re.compile(rf"^(?:(?P<q>{'|'.join(_QUALIFIERS)}) )?(?P<o>.+?)(?: structure)? (?P<a>{_ACTION_RE})$")


def compound(organ: str, action: str) -> str | None:
    """The compound word for ``action`` on ``organ`` ("trachea", "incision" -> "tracheotomy"),
    or None when either is not in the tables."""
    organ, action = organ.lower(), action.lower()
    if organ not in ROOTS or action not in ACTIONS:
        return None
    suffix = ACTIONS[action]
    return _ROOT_FOR.get((organ, suffix), ROOTS[organ]) + suffix


def _equivalents(low: str) -> list[str]:
    """``low`` with one phrase of :data:`EQUIVALENTS` replaced by each other one of its group
    ("computerized axial tomography of brain" -> "ct of brain", "computed tomography of brain")."""
    out = []
    for group in EQUIVALENTS:
        for phrase in group:
            m = re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", low)
            if m:
                out += [low[:m.start()] + other + low[m.end():] for other in group if other != phrase]
                break
    return out


def derive_procedure_synonyms(term: str) -> list[str]:
    """Short forms of a procedure's name (see the module docstring); never the name itself."""
    low = " ".join(term.split()).lower()
    out: list[str] = []
    m = re.match(r"^(.+) procedure$", low)
    if m and m.group(1).endswith(_ACTION_NOUN_END):
        out.append(m.group(1))
    m = re.match(r"^administration of (.+)$", low)
    if m:  # "anesthesia" names the procedure; "antibiotic" names a substance: only "X administration"
        out += [m.group(1)] if m.group(1).endswith(("ia", "sis")) else []
        if not _HAS_POSTMODIFIER.search(m.group(1)):  # not "drug ... via intravenous route administration"
            out.append(f"{m.group(1)} administration")
    m = re.match(r"^diagnostic (.+)$", low)
    if m and not m.group(1).startswith("procedure"):
        out.append(m.group(1))
    variants = [v for base in [low, *out] for v in _equivalents(base)]
    out += variants
    for v in [low, *variants]:
        m = _REORDER.match(v)
        if m:  # "Transplant of kidney" -> "kidney transplant"; "Operation on heart" -> "heart surgery"
            out.append(f"{m.group('o')} {m.group('a')}")
            if m.group("a") == "operation":
                out.append(f"{m.group('o')} surgery")
    for pattern in (_OF, _ORGAN_FIRST):
        m = pattern.match(low)
        if m:
            word = compound(m.group("o"), m.group("a"))
            if word:
                out.append(f"{m.group('q')} {word}" if m.group("q") else word)
    seen = {low}
    uniq = []
    for s in out:
        if s and s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


# British -> American spelling, on word fragments (applied to normalised, lower-case text)
_SPELLING = [
    (re.compile(r"aem(?=i[ac]\b)"), "em"),  # anaemia, ischaemic, hypoglycaemic
    (re.compile(r"(?<![a-z])haem"), "hem"),
    (re.compile(r"oesophag"), "esophag"),
    (re.compile(r"(?<![a-z])oedem"), "edem"),
    (re.compile(r"(?<![a-z])oestr"), "estr"),
    (re.compile(r"(?<![a-z])foet"), "fet"),
    (re.compile(r"(?<![a-z])coeli"), "celi"),
    (re.compile(r"rrhoea"), "rrhea"),
    (re.compile(r"anaesth"), "anesth"),
    (re.compile(r"(?<![a-z])(ortho)?paed"), r"\1ped"),
    (re.compile(r"(?<![a-z])caec"), "cec"),
    (re.compile(r"(tum|col|behavi|lab|od|hum)our"), r"\1or"),
    (re.compile(r"isation"), "ization"),
    (re.compile(r"(?<![a-z])sulph"), "sulf"),
    (re.compile(r"(fib|cent|lit)re(?![a-z])"), r"\1er"),
]


_TRIGGER = re.compile(r"ae|oe|our|isation|sulph|(?:fib|cent|lit)re(?![a-z])")


def americanize(text: str) -> str:
    """``text`` (normalised, lower case) with British spellings made American."""
    if not _TRIGGER.search(text):
        return text
    for pattern, repl in _SPELLING:
        text = pattern.sub(repl, text)
    return text
