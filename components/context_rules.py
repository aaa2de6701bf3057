"""Trigger lists for ``medtext_context``, written by the medtext team.

Each rule: (phrase, category, direction). Categories are the assertion flags plus two kinds
that modify nothing: ``pseudo`` (a phrase that contains a trigger but is not one: "no increase")
and ``terminate`` (ends a trigger's scope: "but"). Directions: ``forward`` (governs what follows
in the sentence), ``backward`` (what precedes), ``both``. Phrases are matched on lower-cased
tokens, so write them as they are tokenised ("r/o" is one token, "s/p" too).
"""

from __future__ import annotations

F, B, BOTH = "forward", "backward", "both"

NEGATION = [
    ("no", F), ("not", F), ("denies", F), ("denied", F), ("deny", F), ("denying", F),
    ("negative for", F), ("neg for", F), ("without", F), ("w/o", F), ("free of", F),
    ("no evidence of", F), ("no sign of", F), ("no signs of", F), ("no evidence for", F),
    ("absence of", F), ("absent", B), ("never had", F), ("never", F), ("none", B),
    ("no history of", F), ("no hx of", F), ("no h/o", F), ("no complaints of", F),
    ("denies any history of", F), ("denies history of", F), ("denies a history of", F),
    ("no prior", F), ("no previous", F), ("no past", F), ("no known", F), ("never been", F),
    ("no further", F), ("not demonstrate", F), ("does not have", F), ("did not have", F),
    ("doesn't have", F), ("didn't have", F), ("not have", F), ("no new", F), ("no acute", F),
    ("resolution of", F), ("ruled out", B), ("rules out", F), ("was ruled out", B),
    ("has been ruled out", B), ("is ruled out", B), ("were ruled out", B), ("excluded", B),
    ("unremarkable for", F), ("fails to reveal", F), ("not seen", B), ("not identified", B),
    ("not present", B), ("not appreciated", B), ("not visualized", B), ("not demonstrated", B),
    ("not detected", B), ("resolved", B), ("has resolved", B), ("have resolved", B),
    ("now resolved", B), ("negative", B), ("is negative", B), ("was negative", B),
    ("neg", B), ("no longer", F), ("nor", F), ("ruled out for", F),
    ("negative workup for", F), ("negative work-up for", F), ("negative evaluation for", F),
]

UNCERTAIN = [
    ("possible", F), ("possibly", F), ("probable", F), ("probably", F), ("likely", F),
    ("questionable", F), ("question of", F), ("suspected", F), ("suspect", F),
    ("suspicion for", F), ("suspicion of", F), ("suspicious for", F), ("suspicious of", F),
    ("concern for", F), ("concerning for", F), ("worrisome for", F), ("may be", F),
    ("may represent", F), ("might be", F), ("could be", F), ("could represent", F),
    ("cannot be excluded", B), ("can not be excluded", B), ("cannot be ruled out", B),
    ("cannot be entirely excluded", B), ("cannot be completely excluded", B),
    ("cannot be entirely ruled out", B), ("cannot be completely ruled out", B),
    ("can't be ruled out", B), ("cannot exclude", F), ("can not exclude", F), ("not excluded", B),
    ("rule out", F), ("r/o", F), ("ro", F), ("to rule out", F), ("evaluate for", F),
    ("evaluation for", F), ("differential includes", F), ("differential diagnosis includes", F),
    ("ddx", F), ("versus", BOTH), ("vs", BOTH), ("vs.", BOTH),     ("suggestive of", F), ("suggests", F), ("suggesting", F),
    ("presumed", F), ("presumably", F), ("?", F), ("uncertain", F), ("unclear if", F),
    ("unclear whether", F), ("not certain whether", F), ("not sure if", F), ("equivocal", BOTH),
    ("borderline", F), ("appears to be", F), ("thought to be", F),
    ("favor", F), ("favored", B), ("impression of", F), ("working diagnosis", F),
]

HYPOTHETICAL = [
    ("if", F), ("return if", F), ("return for", F), ("return to ed for", F), ("should", F),
    ("should she develop", F), ("should he develop", F), ("should symptoms", F),
    ("in case of", F), ("watch for", F), ("monitor for", F), ("call for", F),
    ("call if", F), ("seek care for", F), ("seek medical attention for", F), ("as needed for", F),
    ("prn", F), ("p.r.n.", F), ("at risk for", F), ("risk of", F), ("to prevent", F),
    ("prevention of", F), ("prophylaxis", B), ("in the event of", F), ("look out for", F),
    ("warning signs of", F), ("would", F), ("will need", F),
    # consent and counselling: "risks explained including pneumothorax, bleeding"
    ("risks including", F), ("risks include", F), ("risks of", F), ("risks such as", F),
    ("risks explained including", F), ("risks discussed including", F), ("risks reviewed including", F),
    ("complications including", F), ("complications such as", F), ("possible complications", F),
]

HISTORICAL = [
    ("history of", F), ("hx of", F), ("h/o", F), ("s/p", F), ("status post", F),
    ("hx significant for", F), ("hx notable for", F), ("history notable for", F),
    ("prior", F), ("previous", F), ("previously", F), ("remote", F),     ("in the past", BOTH), ("years ago", B), ("year ago", B), ("months ago", B),
    ("as a child", B), ("childhood", F), ("previously treated for", F), ("formerly", F),
    ("resolved", B), ("has resolved", B), ("now resolved", B), ("healed", F),
    ("history significant for", F), ("pmh of", F), ("pmh significant for", F),
    ("known history of", F), ("longstanding history of", F), ("distant history of", F),
    ("in childhood", B), ("previously diagnosed with", F), ]

FAMILY = [
    ("mother", BOTH), ("father", BOTH), ("mom", BOTH), ("dad", BOTH), ("sister", BOTH),
    ("brother", BOTH), ("sibling", BOTH), ("siblings", BOTH), ("son", BOTH), ("daughter", BOTH),
    ("aunt", BOTH), ("uncle", BOTH), ("cousin", BOTH), ("grandmother", BOTH),
    ("grandfather", BOTH), ("grandparent", BOTH), ("grandparents", BOTH), ("parent", BOTH),
    ("parents", BOTH), ("maternal", F), ("paternal", F), ("family history of", F),
    ("family history", F), ("family hx", F), ("fhx", F), ("fh", F), ("fh of", F),
    ("family member", BOTH), ("relatives", BOTH), ("twin", BOTH),
]

CONDITIONAL = [
    ("with exertion", B), ("on exertion", B), ("upon exertion", B), ("with activity", B),
    ("with exercise", B), ("during exercise", B), ("when walking", B), ("when climbing", B),
    ("when climbing stairs", B), ("climbing stairs", B), ("upon standing", B),
    ("on standing", B), ("when standing", B), ("after meals", B), ("after eating", B),
    ("with meals", B), ("whenever", BOTH), ("when she", B), ("when he", B), ("when lying", B),
    ("when lying flat", B), ("on lying down", B), ("with movement", B), ("with coughing", B),
    ("with deep breathing", B), ("with inspiration", B), ("with deep inspiration", B),
    ("with ambulation", B), ("with walking", B), ("with weight bearing", B), ("with weightbearing", B),
    ("exertional", F), ("with bending", B), ("when bending", B), ("on inspiration", B),
]

PSEUDO = [
    "no increase", "no increased", "no change", "no changes", "no significant change",
    "not only", "not necessarily",
    "without difficulty", "without assistance", "without assistive device", "without device",
    "without an assistive device", "without any assistance", "without loss of balance",
    "gram negative", "gram-negative", "no interval change", "not ruled out",
    "history of present illness", "history and physical", "family history of present illness",
    "if needed", "if necessary", "if possible", "even if", "only if", "as if",
    "no further workup", "not been", "not drain", "whether or not", "no longer on",
    "rule out protocol", "negative pressure", "not able", "unable",
]

TERMINATE = [
    "but", "however", "although", "though", "except", "except for", "aside from",
    "apart from", "yet", "nevertheless", "which", "who", "cause of", "source of",
    "secondary to", "presents with", "presenting with", "complains of",
    "c/o", "reports", "now with", ";", "still",
]

SECTION_FLAGS = {  # section label -> flag implied for every entity in it
    "pmh": "historical",
    "family_history": "family",
}


def rules() -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for cat, items in (("negated", NEGATION), ("uncertain", UNCERTAIN),
                       ("hypothetical", HYPOTHETICAL), ("historical", HISTORICAL),
                       ("family", FAMILY), ("conditional", CONDITIONAL)):
        out.extend((phrase, cat, d) for phrase, d in items if d)
    out.extend((p, "pseudo", None) for p in PSEUDO)
    out.extend((p, "terminate", None) for p in TERMINATE)
    return out
