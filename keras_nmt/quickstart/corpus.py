"""A small, deterministic English->German parallel corpus built from templates.

The quickstart has to train and evaluate a model on a machine that holds nothing but
this repository: no network, no downloaded data sets. This module writes such a corpus
on the fly. Every pair is a short sentence about numbers and amounts (2..999 written in
words with ``num2words``) inside one of a few sentence templates with a closed
vocabulary of nouns, subjects, verbs, places and times.

The language is small enough to be learned in minutes on a CPU, yet it is not a
word-for-word substitution: German compounds numbers and reverses units and tens
("twenty-one" -> "einundzwanzig"), puts participles and infinitives at the end of the
clause ("Yesterday he bought forty-two apples." -> "Gestern hat er zweiundvierzig Äpfel
gekauft."), inverts subject and verb after a fronted adverbial or in questions, and
puts the finite verb last in subordinate clauses. Those are the things an attention
model has to learn.

Generation uses ``random.Random(seed)`` only, so the same seed gives the same corpus in
every Python process. English sentences are unique, so splits written by
:func:`write_corpus` are disjoint on the source side.
"""

from __future__ import annotations

import math
import operator
import pathlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from num2words import num2words

SOURCE_LANG = "en"
TARGET_LANG = "de"

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

# Grammatical persons, used as indices into the German verb tables below.
I_SG, YOU_SG, HE_SG, WE_PL, THEY_PL = range(5)


class Subject(NamedTuple):
    en: str
    de: str
    person: int


class Noun(NamedTuple):
    en_sg: str
    en_pl: str
    de_sg: str
    de_pl: str
    gender: str  # "m", "f" or "n"


class Phrase(NamedTuple):
    en: str
    de: str


class Verb(NamedTuple):
    """An English form and the German forms it needs in one template."""

    en: str  # base form (present / infinitive) or simple past, depending on the list
    en_3sg: str  # third person singular present ("buys"); same as ``en`` when unused
    de: tuple[str, ...]  # conjugated German forms indexed by person, or one non-finite form


SUBJECTS: tuple[Subject, ...] = (
    Subject("I", "ich", I_SG),
    Subject("you", "du", YOU_SG),
    Subject("he", "er", HE_SG),
    Subject("she", "sie", HE_SG),
    Subject("we", "wir", WE_PL),
    Subject("they", "sie", THEY_PL),
    Subject("Anna", "Anna", HE_SG),
    Subject("Peter", "Peter", HE_SG),
    Subject("my brother", "mein Bruder", HE_SG),
    Subject("my sister", "meine Schwester", HE_SG),
    Subject("my parents", "meine Eltern", THEY_PL),
)

# Things one can buy, carry, count, ... (English singular/plural, German singular/plural).
GOODS: tuple[Noun, ...] = (
    Noun("apple", "apples", "Apfel", "Äpfel", "m"),
    Noun("banana", "bananas", "Banane", "Bananen", "f"),
    Noun("egg", "eggs", "Ei", "Eier", "n"),
    Noun("tomato", "tomatoes", "Tomate", "Tomaten", "f"),
    Noun("potato", "potatoes", "Kartoffel", "Kartoffeln", "f"),
    Noun("cake", "cakes", "Kuchen", "Kuchen", "m"),
    Noun("bottle", "bottles", "Flasche", "Flaschen", "f"),
    Noun("cup", "cups", "Tasse", "Tassen", "f"),
    Noun("glass", "glasses", "Glas", "Gläser", "n"),
    Noun("plate", "plates", "Teller", "Teller", "m"),
    Noun("book", "books", "Buch", "Bücher", "n"),
    Noun("newspaper", "newspapers", "Zeitung", "Zeitungen", "f"),
    Noun("pencil", "pencils", "Bleistift", "Bleistifte", "m"),
    Noun("key", "keys", "Schlüssel", "Schlüssel", "m"),
    Noun("lamp", "lamps", "Lampe", "Lampen", "f"),
    Noun("chair", "chairs", "Stuhl", "Stühle", "m"),
    Noun("shirt", "shirts", "Hemd", "Hemden", "n"),
    Noun("shoe", "shoes", "Schuh", "Schuhe", "m"),
    Noun("bag", "bags", "Tasche", "Taschen", "f"),
    Noun("flower", "flowers", "Blume", "Blumen", "f"),
)

ANIMALS: tuple[Noun, ...] = (
    Noun("dog", "dogs", "Hund", "Hunde", "m"),
    Noun("cat", "cats", "Katze", "Katzen", "f"),
    Noun("bird", "birds", "Vogel", "Vögel", "m"),
    Noun("horse", "horses", "Pferd", "Pferde", "n"),
    Noun("cow", "cows", "Kuh", "Kühe", "f"),
    Noun("sheep", "sheep", "Schaf", "Schafe", "n"),
    Noun("duck", "ducks", "Ente", "Enten", "f"),
    Noun("goat", "goats", "Ziege", "Ziegen", "f"),
    Noun("child", "children", "Kind", "Kinder", "n"),
)

PLACES: tuple[Phrase, ...] = (
    Phrase("in the park", "im Park"),
    Phrase("in the garden", "im Garten"),
    Phrase("in the village", "im Dorf"),
    Phrase("in the forest", "im Wald"),
    Phrase("on the farm", "auf dem Bauernhof"),
    Phrase("at the lake", "am See"),
)

PAST_TIMES: tuple[Phrase, ...] = (
    Phrase("yesterday", "gestern"),
    Phrase("last week", "letzte Woche"),
    Phrase("last year", "letztes Jahr"),
    Phrase("on Monday", "am Montag"),
    Phrase("this morning", "heute Morgen"),
)

FUTURE_TIMES: tuple[Phrase, ...] = (
    Phrase("tomorrow", "morgen"),
    Phrase("next week", "nächste Woche"),
    Phrase("next year", "nächstes Jahr"),
    Phrase("on Friday", "am Freitag"),
    Phrase("tonight", "heute Abend"),
)

CURRENCIES: tuple[Phrase, ...] = (
    Phrase("euros", "Euro"),
    Phrase("dollars", "Dollar"),
    Phrase("pounds", "Pfund"),
    Phrase("francs", "Franken"),
)

# German finite forms, indexed by person (ich, du, er/sie/es, wir, sie).
HABEN = ("habe", "hast", "hat", "haben", "haben")
WERDEN = ("werde", "wirst", "wird", "werden", "werden")

# Present tense: "I buy" -> "ich kaufe".
PRESENT_VERBS: tuple[Verb, ...] = (
    Verb("buy", "buys", ("kaufe", "kaufst", "kauft", "kaufen", "kaufen")),
    Verb("need", "needs", ("brauche", "brauchst", "braucht", "brauchen", "brauchen")),
    Verb("have", "has", HABEN),
    Verb("sell", "sells", ("verkaufe", "verkaufst", "verkauft", "verkaufen", "verkaufen")),
)

# Simple past in English, perfect with "haben" in German: "bought" -> "hat ... gekauft".
PAST_VERBS: tuple[Verb, ...] = (
    Verb("bought", "bought", ("gekauft",)),
    Verb("sold", "sold", ("verkauft",)),
    Verb("ordered", "ordered", ("bestellt",)),
    Verb("counted", "counted", ("gezählt",)),
    Verb("found", "found", ("gefunden",)),
    Verb("carried", "carried", ("getragen",)),
)

# Infinitives after "will" / modal verbs: "will buy" -> "wird ... kaufen".
INFINITIVES: tuple[Verb, ...] = (
    Verb("buy", "buy", ("kaufen",)),
    Verb("sell", "sell", ("verkaufen",)),
    Verb("order", "order", ("bestellen",)),
    Verb("count", "count", ("zählen",)),
    Verb("carry", "carry", ("tragen",)),
)

# Modal verbs: English "wants to" / "can" / "must", German finite forms by person.
MODALS: tuple[Verb, ...] = (
    Verb("want to", "wants to", ("will", "willst", "will", "wollen", "wollen")),
    Verb("can", "can", ("kann", "kannst", "kann", "können", "können")),
    Verb("must", "must", ("muss", "musst", "muss", "müssen", "müssen")),
)

# Main clauses introducing "that ..." / "dass ..." (German verb goes last in the clause).
REPORTING: tuple[Phrase, ...] = (
    Phrase("I think", "Ich glaube"),
    Phrase("she says", "Sie sagt"),
    Phrase("we know", "Wir wissen"),
    Phrase("he hopes", "Er hofft"),
)

RELATIVES: tuple[Noun, ...] = (  # only the singular is used, with "my" / "mein(e)"
    Noun("grandfather", "grandfathers", "Großvater", "Großväter", "m"),
    Noun("grandmother", "grandmothers", "Großmutter", "Großmütter", "f"),
    Noun("uncle", "uncles", "Onkel", "Onkel", "m"),
    Noun("aunt", "aunts", "Tante", "Tanten", "f"),
    Noun("teacher", "teachers", "Lehrer", "Lehrer", "m"),
    Noun("neighbor", "neighbors", "Nachbar", "Nachbarn", "m"),
)

OLD_THINGS: tuple[Noun, ...] = (
    Noun("church", "churches", "Kirche", "Kirchen", "f"),
    Noun("castle", "castles", "Schloss", "Schlösser", "n"),
    Noun("bridge", "bridges", "Brücke", "Brücken", "f"),
    Noun("tower", "towers", "Turm", "Türme", "m"),
    Noun("tree", "trees", "Baum", "Bäume", "m"),
)

DESTINATIONS: tuple[Noun, ...] = (
    Noun("station", "stations", "Bahnhof", "Bahnhöfe", "m"),
    Noun("airport", "airports", "Flughafen", "Flughäfen", "m"),
    Noun("beach", "beaches", "Strand", "Strände", "m"),
    Noun("hotel", "hotels", "Hotel", "Hotels", "n"),
    Noun("school", "schools", "Schule", "Schulen", "f"),
    Noun("city", "cities", "Stadt", "Städte", "f"),
    Noun("museum", "museums", "Museum", "Museen", "n"),
)

DISTANCE_UNITS: tuple[Phrase, ...] = (
    Phrase("kilometers", "Kilometer"),
    Phrase("meters", "Meter"),
    Phrase("miles", "Meilen"),
    Phrase("minutes", "Minuten"),
)

DURATIONS: tuple[Phrase, ...] = (
    Phrase("seconds", "Sekunden"),
    Phrase("minutes", "Minuten"),
    Phrase("hours", "Stunden"),
)

AWAITED: tuple[Noun, ...] = (  # "waited ... for the bus" -> "auf den Bus gewartet"
    Noun("bus", "buses", "Bus", "Busse", "m"),
    Noun("train", "trains", "Zug", "Züge", "m"),
    Noun("taxi", "taxis", "Taxi", "Taxis", "n"),
    Noun("ferry", "ferries", "Fähre", "Fähren", "f"),
    Noun("doctor", "doctors", "Arzt", "Ärzte", "m"),
)

BUILDINGS: tuple[Noun, ...] = (
    Noun("hotel", "hotels", "Hotel", "Hotels", "n"),
    Noun("school", "schools", "Schule", "Schulen", "f"),
    Noun("hospital", "hospitals", "Krankenhaus", "Krankenhäuser", "n"),
    Noun("library", "libraries", "Bibliothek", "Bibliotheken", "f"),
    Noun("castle", "castles", "Schloss", "Schlösser", "n"),
)

FEATURES: tuple[Phrase, ...] = (
    Phrase("rooms", "Zimmer"),
    Phrase("windows", "Fenster"),
    Phrase("doors", "Türen"),
    Phrase("beds", "Betten"),
    Phrase("chairs", "Stühle"),
)

OPERATORS: tuple[Phrase, ...] = (
    Phrase("plus", "plus"),
    Phrase("minus", "minus"),
    Phrase("times", "mal"),
)

NUMBERS = range(2, 1000)
SMALL_NUMBERS = range(2, 100)

ARTICLE_NOM = {"m": "der", "f": "die", "n": "das"}
ARTICLE_ACC = {"m": "den", "f": "die", "n": "das"}
POSSESSIVE_NOM = {"m": "mein", "f": "meine", "n": "mein"}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@cache
def number_en(n: int) -> str:
    """English cardinal in words, e.g. 21 -> "twenty-one"."""
    return num2words(n, lang="en")


@cache
def number_de(n: int) -> str:
    """German cardinal in words, e.g. 21 -> "einundzwanzig"."""
    return num2words(n, lang="de")


def _cap(text: str) -> str:
    """Upper-case the first character only (keeps German nouns and names intact)."""
    return text[:1].upper() + text[1:]


def _sentence(en: str, de: str, end: str = ".") -> tuple[str, str]:
    return _cap(en) + end, _cap(de) + end


def _present_en(subject: Subject, verb: Verb) -> str:
    return verb.en_3sg if subject.person == HE_SG else verb.en


# ---------------------------------------------------------------------------
# Templates: each renders one (english, german) pair from its slot values.
# ---------------------------------------------------------------------------


def _present(subj: Subject, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "We need twelve eggs." -> "Wir brauchen zwölf Eier."
    return _sentence(
        f"{subj.en} {_present_en(subj, verb)} {number_en(num)} {goods.en_pl}",
        f"{subj.de} {verb.de[subj.person]} {number_de(num)} {goods.de_pl}",
    )


def _past(time: Phrase, subj: Subject, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "Yesterday he bought forty-two apples." -> "Gestern hat er zweiundvierzig Äpfel gekauft."
    return _sentence(
        f"{time.en} {subj.en} {verb.en} {number_en(num)} {goods.en_pl}",
        f"{time.de} {HABEN[subj.person]} {subj.de} {number_de(num)} {goods.de_pl} {verb.de[0]}",
    )


def _future(time: Phrase, subj: Subject, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "Tomorrow we will sell ten cups." -> "Morgen werden wir zehn Tassen verkaufen."
    return _sentence(
        f"{time.en} {subj.en} will {verb.en} {number_en(num)} {goods.en_pl}",
        f"{time.de} {WERDEN[subj.person]} {subj.de} {number_de(num)} {goods.de_pl} {verb.de[0]}",
    )


def _modal(subj: Subject, modal: Verb, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "She wants to buy six shoes." -> "Sie will sechs Schuhe kaufen."
    return _sentence(
        f"{subj.en} {_present_en(subj, modal)} {verb.en} {number_en(num)} {goods.en_pl}",
        f"{subj.de} {modal.de[subj.person]} {number_de(num)} {goods.de_pl} {verb.de[0]}",
    )


def _reported(main: Phrase, subj: Subject, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "I think that Anna sold nine lamps." -> "Ich glaube, dass Anna neun Lampen verkauft hat."
    return _sentence(
        f"{main.en} that {subj.en} {verb.en} {number_en(num)} {goods.en_pl}",
        f"{main.de}, dass {subj.de} {number_de(num)} {goods.de_pl} {verb.de[0]} "
        f"{HABEN[subj.person]}",
    )


def _there_are(num: int, animals: Noun, place: Phrase) -> tuple[str, str]:
    # "There are five cows on the farm." -> "Auf dem Bauernhof gibt es fünf Kühe."
    return _sentence(
        f"there are {number_en(num)} {animals.en_pl} {place.en}",
        f"{place.de} gibt es {number_de(num)} {animals.de_pl}",
    )


def _saw(time: Phrase, subj: Subject, num: int, animals: Noun, place: Phrase) -> tuple[str, str]:
    # "Yesterday I saw ten ducks at the lake." -> "Gestern habe ich am See zehn Enten gesehen."
    return _sentence(
        f"{time.en} {subj.en} saw {number_en(num)} {animals.en_pl} {place.en}",
        f"{time.de} {HABEN[subj.person]} {subj.de} {place.de} {number_de(num)} "
        f"{animals.de_pl} gesehen",
    )


def _price_one(item: Noun, num: int, currency: Phrase) -> tuple[str, str]:
    # "The book costs twelve euros." -> "Das Buch kostet zwölf Euro."
    return _sentence(
        f"the {item.en_sg} costs {number_en(num)} {currency.en}",
        f"{ARTICLE_NOM[item.gender]} {item.de_sg} kostet {number_de(num)} {currency.de}",
    )


def _price_many(items: Noun, num: int, currency: Phrase) -> tuple[str, str]:
    # "The apples cost three dollars." -> "Die Äpfel kosten drei Dollar."
    return _sentence(
        f"the {items.en_pl} cost {number_en(num)} {currency.en}",
        f"die {items.de_pl} kosten {number_de(num)} {currency.de}",
    )


def _price_cents(item: Noun, whole: int, currency: Phrase, cents: int) -> tuple[str, str]:
    # "The cup costs four euros and fifty cents." -> "Die Tasse kostet vier Euro und fünfzig Cent."
    return _sentence(
        f"the {item.en_sg} costs {number_en(whole)} {currency.en} and {number_en(cents)} cents",
        f"{ARTICLE_NOM[item.gender]} {item.de_sg} kostet {number_de(whole)} {currency.de} "
        f"und {number_de(cents)} Cent",
    )


def _paid(subj: Subject, num: int, currency: Phrase, item: Noun) -> tuple[str, str]:
    # "He paid ten euros for the chair." -> "Er hat zehn Euro für den Stuhl bezahlt."
    return _sentence(
        f"{subj.en} paid {number_en(num)} {currency.en} for the {item.en_sg}",
        f"{subj.de} {HABEN[subj.person]} {number_de(num)} {currency.de} für "
        f"{ARTICLE_ACC[item.gender]} {item.de_sg} bezahlt",
    )


def _age_person(relative: Noun, num: int) -> tuple[str, str]:
    # "My aunt is forty years old." -> "Meine Tante ist vierzig Jahre alt."
    return _sentence(
        f"my {relative.en_sg} is {number_en(num)} years old",
        f"{POSSESSIVE_NOM[relative.gender]} {relative.de_sg} ist {number_de(num)} Jahre alt",
    )


def _age_thing(thing: Noun, num: int) -> tuple[str, str]:
    # "The church is six hundred years old." -> "Die Kirche ist sechshundert Jahre alt."
    return _sentence(
        f"the {thing.en_sg} is {number_en(num)} years old",
        f"{ARTICLE_NOM[thing.gender]} {thing.de_sg} ist {number_de(num)} Jahre alt",
    )


def _distance(place: Noun, num: int, unit: Phrase) -> tuple[str, str]:
    # "The station is three kilometers away." -> "Der Bahnhof ist drei Kilometer entfernt."
    return _sentence(
        f"the {place.en_sg} is {number_en(num)} {unit.en} away",
        f"{ARTICLE_NOM[place.gender]} {place.de_sg} ist {number_de(num)} {unit.de} entfernt",
    )


def _waited(subj: Subject, num: int, unit: Phrase, awaited: Noun) -> tuple[str, str]:
    # "We waited twenty minutes for the bus." -> "Wir haben zwanzig Minuten auf den Bus gewartet."
    return _sentence(
        f"{subj.en} waited {number_en(num)} {unit.en} for the {awaited.en_sg}",
        f"{subj.de} {HABEN[subj.person]} {number_de(num)} {unit.de} auf "
        f"{ARTICLE_ACC[awaited.gender]} {awaited.de_sg} gewartet",
    )


def _question(subj: Subject, verb: Verb, num: int, goods: Noun) -> tuple[str, str]:
    # "Does Peter need eight bottles?" -> "Braucht Peter acht Flaschen?"
    do = "does" if subj.person == HE_SG else "do"
    return _sentence(
        f"{do} {subj.en} {verb.en} {number_en(num)} {goods.en_pl}",
        f"{verb.de[subj.person]} {subj.de} {number_de(num)} {goods.de_pl}",
        end="?",
    )


def _arithmetic(left: int, op: Phrase, right: int) -> tuple[str, str]:
    # "What is twelve times five?" -> "Was ist zwölf mal fünf?"
    return _sentence(
        f"what is {number_en(left)} {op.en} {number_en(right)}",
        f"was ist {number_de(left)} {op.de} {number_de(right)}",
        end="?",
    )


def _building(building: Noun, num: int, feature: Phrase) -> tuple[str, str]:
    # "The hotel has forty rooms." -> "Das Hotel hat vierzig Zimmer."
    return _sentence(
        f"the {building.en_sg} has {number_en(num)} {feature.en}",
        f"{ARTICLE_NOM[building.gender]} {building.de_sg} hat {number_de(num)} {feature.de}",
    )


@dataclass(frozen=True)
class Template:
    """A sentence template: named slots, each with its list of values, and a renderer.

    Every combination of slot values gives a different English sentence, so the
    combinations can be numbered ``0 .. capacity - 1`` and sampled without repetition.
    """

    name: str
    slots: tuple[tuple[str, Sequence[Any]], ...]
    render: Callable[..., tuple[str, str]]

    @property
    def capacity(self) -> int:
        """Number of distinct pairs this template can produce."""
        return math.prod(len(values) for _, values in self.slots)

    def pair(self, index: int) -> tuple[str, str]:
        """The pair for combination ``index`` (mixed-radix over the slots)."""
        if not 0 <= index < self.capacity:
            raise ValueError(
                f"index must be in [0, {self.capacity}) for template {self.name!r}, got {index}"
            )
        values = {}
        for slot, options in reversed(self.slots):
            index, position = divmod(index, len(options))
            values[slot] = options[position]
        return self.render(**values)

    def example(self, **overrides: Any) -> tuple[str, str]:
        """Render with the first value of every slot, except those given as keywords.

        ``template("past").example(num=21)`` ->
        ``("Yesterday I bought twenty-one apples.", "Gestern habe ich einundzwanzig Äpfel
        gekauft.")``
        """
        names = [slot for slot, _ in self.slots]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"template {self.name!r} has slots {names}, got unknown {unknown}")
        values = {slot: options[0] for slot, options in self.slots}
        values.update(overrides)
        return self.render(**values)


TEMPLATES: tuple[Template, ...] = (
    Template(
        "present",
        (("subj", SUBJECTS), ("verb", PRESENT_VERBS), ("num", NUMBERS), ("goods", GOODS)),
        _present,
    ),
    Template(
        "past",
        (
            ("time", PAST_TIMES),
            ("subj", SUBJECTS),
            ("verb", PAST_VERBS),
            ("num", NUMBERS),
            ("goods", GOODS),
        ),
        _past,
    ),
    Template(
        "future",
        (
            ("time", FUTURE_TIMES),
            ("subj", SUBJECTS),
            ("verb", INFINITIVES),
            ("num", NUMBERS),
            ("goods", GOODS),
        ),
        _future,
    ),
    Template(
        "modal",
        (
            ("subj", SUBJECTS),
            ("modal", MODALS),
            ("verb", INFINITIVES),
            ("num", NUMBERS),
            ("goods", GOODS),
        ),
        _modal,
    ),
    Template(
        "reported",
        (
            ("main", REPORTING),
            ("subj", SUBJECTS),
            ("verb", PAST_VERBS),
            ("num", NUMBERS),
            ("goods", GOODS),
        ),
        _reported,
    ),
    Template(
        "there_are",
        (("num", NUMBERS), ("animals", ANIMALS), ("place", PLACES)),
        _there_are,
    ),
    Template(
        "saw",
        (
            ("time", PAST_TIMES),
            ("subj", SUBJECTS),
            ("num", NUMBERS),
            ("animals", ANIMALS),
            ("place", PLACES),
        ),
        _saw,
    ),
    Template(
        "price_one",
        (("item", GOODS), ("num", NUMBERS), ("currency", CURRENCIES)),
        _price_one,
    ),
    Template(
        "price_many",
        (("items", GOODS), ("num", NUMBERS), ("currency", CURRENCIES)),
        _price_many,
    ),
    Template(
        "price_cents",
        (
            ("item", GOODS),
            ("whole", SMALL_NUMBERS),
            ("currency", CURRENCIES[:2]),
            ("cents", SMALL_NUMBERS),
        ),
        _price_cents,
    ),
    Template(
        "paid",
        (("subj", SUBJECTS), ("num", NUMBERS), ("currency", CURRENCIES), ("item", GOODS)),
        _paid,
    ),
    Template("age_person", (("relative", RELATIVES), ("num", SMALL_NUMBERS)), _age_person),
    Template("age_thing", (("thing", OLD_THINGS), ("num", NUMBERS)), _age_thing),
    Template(
        "distance",
        (("place", DESTINATIONS), ("num", NUMBERS), ("unit", DISTANCE_UNITS)),
        _distance,
    ),
    Template(
        "waited",
        (("subj", SUBJECTS), ("num", SMALL_NUMBERS), ("unit", DURATIONS), ("awaited", AWAITED)),
        _waited,
    ),
    Template(
        "question",
        (("subj", SUBJECTS[1:]), ("verb", PRESENT_VERBS), ("num", NUMBERS), ("goods", GOODS)),
        _question,
    ),
    Template(
        "arithmetic",
        (("left", NUMBERS), ("op", OPERATORS), ("right", SMALL_NUMBERS)),
        _arithmetic,
    ),
    Template(
        "building",
        (("building", BUILDINGS), ("num", NUMBERS), ("feature", FEATURES)),
        _building,
    ),
)


def template(name: str) -> Template:
    """The template called ``name`` (see ``TEMPLATES``)."""
    for candidate in TEMPLATES:
        if candidate.name == name:
            return candidate
    names = [t.name for t in TEMPLATES]
    raise ValueError(f"expected a template name out of {names}, got {name!r}")


def max_pairs() -> int:
    """How many unique pairs :func:`generate_pairs` can produce."""
    return sum(t.capacity for t in TEMPLATES)


def _allocate(n: int, capacities: Sequence[int]) -> list[int]:
    """Split ``n`` as evenly as possible over templates without exceeding any capacity."""
    counts = [0] * len(capacities)
    open_ids = list(range(len(capacities)))
    remaining = n
    while open_ids:
        share = remaining // len(open_ids)
        full = [i for i in open_ids if capacities[i] <= share]
        if not full:
            break
        for i in full:
            counts[i] = capacities[i]
            remaining -= capacities[i]
        open_ids = [i for i in open_ids if i not in full]
    if not open_ids:
        return counts
    share, extra = divmod(remaining, len(open_ids))
    for rank, i in enumerate(open_ids):
        counts[i] = share + (1 if rank < extra else 0)
    return counts


def generate_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` unique (english, german) pairs, shuffled, deterministic in ``seed``.

    The pairs are spread evenly over the templates (a template that cannot fill its
    share contributes all it has). Raises ``ValueError`` if ``n`` is negative or larger
    than :func:`max_pairs`.
    """
    n = operator.index(n)
    limit = max_pairs()
    if not 0 <= n <= limit:
        raise ValueError(f"expected 0 <= n <= {limit} (what the templates can produce), got {n}")
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    counts = _allocate(n, [t.capacity for t in TEMPLATES])
    for tmpl, count in zip(TEMPLATES, counts, strict=True):
        pairs.extend(tmpl.pair(index) for index in rng.sample(range(tmpl.capacity), count))
    rng.shuffle(pairs)
    return pairs


def write_corpus(
    directory: str | pathlib.Path,
    train_size: int = 24000,
    valid_size: int = 500,
    test_size: int = 500,
    seed: int = 0,
) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    """Write ``{train,valid,test}.{en,de}`` into ``directory`` (created if missing).

    Files are UTF-8, one sentence per line with ``"\\n"`` endings; line N of a ``.en``
    file translates line N of the matching ``.de`` file. The English sides of the three
    splits are disjoint. Returns ``{"train": (en_path, de_path), "valid": ..., "test": ...}``.
    """
    sizes = {"train": train_size, "valid": valid_size, "test": test_size}
    for split, size in sizes.items():
        if operator.index(size) < 0:
            raise ValueError(f"expected {split}_size >= 0, got {size}")
    pairs = generate_pairs(sum(sizes.values()), seed=seed)
    out_dir = pathlib.Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, tuple[pathlib.Path, pathlib.Path]] = {}
    start = 0
    for split, size in sizes.items():
        chunk = pairs[start : start + size]
        start += size
        en_path = out_dir / f"{split}.{SOURCE_LANG}"
        de_path = out_dir / f"{split}.{TARGET_LANG}"
        for path, side in ((en_path, 0), (de_path, 1)):
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                handle.writelines(pair[side] + "\n" for pair in chunk)
        paths[split] = (en_path, de_path)
    return paths
