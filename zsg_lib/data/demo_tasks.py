"""The task families of the demo suite: what each task asks and where its answers come from.

Every task is a :class:`TaskSpec`: a family, fields that fill its instruction templates (e.g.
the language pair), the family's instruction templates, and an ``items`` function drawing
``n`` distinct ``(slots, answer)`` pairs from a seeded :class:`random.Random`. Content is real
where a package has it: CLDR names and formats via Babel, number words via num2words;
arithmetic, strings, lists and classification are computed.

>>> specs = all_specs()
>>> len(specs) >= 120, len({s.family for s in specs}) >= 15
(True, True)
>>> spec = next(s for s in specs if s.name == "month_names_en_fr")
>>> spec.items(random.Random(0), 2)[0][1]
'24 juillet'
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from babel import Locale
from babel.dates import format_date
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal, get_territory_currencies
from num2words import num2words

Item = tuple[dict[str, str], str]  # (template slots, answer)
Items = Callable[[random.Random, int], list[Item]]


@dataclass(frozen=True)
class TaskSpec:
    """One demo task: name, family, template fields, candidate templates, item source."""

    name: str
    family: str
    fields: dict[str, str]
    templates: tuple[str, ...]
    items: Items = field(repr=False, compare=False)


LANG = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
        "nl": "Dutch", "pt": "Portuguese", "pl": "Polish", "sv": "Swedish", "da": "Danish"}


def _draw(pool: list[Item], rng: random.Random, n: int) -> list[Item]:
    """n distinct items of a fixed pool, in random order."""
    if len(pool) < n:
        raise ValueError(f"pool of {len(pool)} items is smaller than {n}")
    return rng.sample(pool, n)


def _generate(make: Callable[[random.Random], Item], rng: random.Random, n: int) -> list[Item]:
    """n items with distinct prompts from a random generator."""
    seen: dict[tuple, Item] = {}
    for _ in range(100 * n):
        slots, answer = make(rng)
        seen.setdefault(tuple(sorted(slots.items())), (slots, answer))
        if len(seen) == n:
            return list(seen.values())
    raise ValueError(f"could not draw {n} distinct items")


# ---- CLDR name translation -------------------------------------------------------------

@cache
def _names(kind: str, lang: str) -> dict[str, str]:
    loc = Locale.parse(lang)
    if kind == "country":  # two-letter codes only ("001" is a region); no pseudo-territories
        names = {k: v for k, v in loc.territories.items()
                 if len(k) == 2 and k.isalpha() and k not in _NOT_COUNTRIES}
    elif kind == "language":
        names = {k: v for k, v in loc.languages.items() if "_" not in k and len(k) <= 3}
    else:
        names = dict(loc.currencies)
    # Short, current names only: "Brazilian New Cruzado (1989–1990)" is neither.
    return {k: v for k, v in names.items()
            if "(" not in v and not any(c.isdigit() for c in v) and len(v) <= 30}


_NOT_COUNTRIES = {"XA", "XB", "ZZ", "QO", "EU", "EZ", "UN"}


def _name_pairs(kind: str, src: str, tgt: str) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        a, b = _names(kind, src), _names(kind, tgt)
        pool = [({"x": a[k]}, b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
        return _draw(pool, rng, n)
    return items


def _date_pairs(pattern: str, src: str, tgt: str) -> Items:
    days = [dt.date(2001, 1, 1) + dt.timedelta(d) for d in range(365)]

    def items(rng: random.Random, n: int) -> list[Item]:
        pool = {format_date(d, pattern, locale=src): format_date(d, pattern, locale=tgt)
                for d in days}
        return _draw([({"x": k}, v) for k, v in sorted(pool.items())], rng, n)
    return items


def _translation_templates(what: str) -> tuple[str, ...]:
    return (
        f'Translate the {what} "{{x}}" from {{src}} to {{tgt}}.',
        f'How do you say the {what} "{{x}}" in {{tgt}}?',
        f"{{src}} {what}: {{x}}\n{{tgt}}:",
        f'Give the {{tgt}} for the {{src}} {what} "{{x}}".',
        f"Write this {what} in {{tgt}}: {{x}}",
    )


def _translation_family(family: str, what: str, pairs: list[str],
                        make: Callable[[str, str], Items]) -> list[TaskSpec]:
    specs = []
    for pair in pairs:
        src, tgt = pair.split("_")
        specs.append(TaskSpec(f"{family}_{src}_{tgt}", family,
                              {"src": LANG[src], "tgt": LANG[tgt]},
                              _translation_templates(what), make(src, tgt)))
    return specs


# ---- numbers in words and locale formats -------------------------------------------------

def _n2w(to: str, lang: str, lo: int, hi: int, reverse: bool = False) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        nums = rng.sample(range(lo, hi), n)
        pairs = [(str(k), num2words(k, lang=lang, to=to)) for k in nums]
        return [({"x": w}, d) if reverse else ({"x": d}, w) for d, w in pairs]
    return items


def _formatted(kind: str, locale: str, currency: str = "") -> Items:
    def make(rng: random.Random) -> Item:
        if kind == "number":
            x = round(rng.uniform(1000, 9_999_999), 2)
            return {"x": f"{x:.2f}"}, format_decimal(x, locale=locale)
        if kind == "currency":
            x = round(rng.uniform(1, 99_999), 2)
            return {"x": f"{x:.2f}"}, format_currency(x, currency, locale=locale)
        style = kind.split(":")[1]
        d = dt.date(1950, 1, 1) + dt.timedelta(rng.randrange(365 * 80))
        return {"x": d.isoformat()}, format_date(d, style, locale=locale)
    return lambda rng, n: _generate(make, rng, n)


def _region(locale: str) -> str:
    return Locale.parse(locale).get_display_name("en")


# ---- computed tasks -----------------------------------------------------------------------

def _computed(fn: Callable[[random.Random], Item]) -> Items:
    return lambda rng, n: _generate(fn, rng, n)


def _words() -> list[str]:
    """Single English words from CLDR country and language names (≥ 4 letters)."""
    names = list(_names("country", "en").values()) + list(_names("language", "en").values())
    return sorted({w.lower() for w in names if w.isalpha() and w.isascii() and len(w) >= 4})


def _word_task(fn: Callable[[str], str]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        return [({"x": w}, fn(w)) for w in rng.sample(_words(), n)]
    return items


def _list_task(fn: Callable[[list[int]], object]) -> Items:
    def make(rng: random.Random) -> Item:
        xs = [rng.randrange(100) for _ in range(rng.randint(3, 6))]
        out = fn(xs)
        text = " ".join(map(str, out)) if isinstance(out, list) else str(out)
        return {"x": " ".join(map(str, xs))}, text
    return _computed(make)


def _is_prime(k: int) -> bool:
    return k > 1 and all(k % p for p in range(2, math.isqrt(k) + 1))


def _roman(k: int) -> str:
    out = ""
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                       (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                       (4, "IV"), (1, "I")):
        while k >= value:
            out, k = out + sym, k - value
    return out


def _int_task(lo: int, hi: int, fn: Callable[[int], tuple[str, str]]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        return [({"x": fn(k)[0]}, fn(k)[1]) for k in rng.sample(range(lo, hi), n)]
    return items


def _binary_op(fn: Callable[[int, int], int], a: tuple[int, int], b: tuple[int, int]) -> Items:
    def make(rng: random.Random) -> Item:
        x, y = rng.randrange(*a), rng.randrange(*b)
        return {"a": str(x), "b": str(y)}, str(fn(x, y))
    return _computed(make)


def _yes_no(test: Callable[[int], bool], lo: int, hi: int) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        # Half yes, half no, so a constant answer is not enough.
        yes = [k for k in range(lo, hi) if test(k)]
        no = [k for k in range(lo, hi) if not test(k)]
        picked = rng.sample(yes, n // 2) + rng.sample(no, n - n // 2)
        rng.shuffle(picked)
        return [({"x": str(k)}, "yes" if test(k) else "no") for k in picked]
    return items


def _word_yes_no(test: Callable[[str], bool]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        words = _words()
        yes, no = [w for w in words if test(w)], [w for w in words if not test(w)]
        picked = rng.sample(yes, min(n // 2, len(yes)))
        picked += rng.sample(no, n - len(picked))
        rng.shuffle(picked)
        return [({"x": w}, "yes" if test(w) else "no") for w in picked]
    return items


def _language_id(kind: str) -> Items:
    langs = ["en", "fr", "de", "es", "it"]

    def items(rng: random.Random, n: int) -> list[Item]:
        label: dict[str, str | None] = {}
        for lang in langs:
            for text in _lang_texts(kind, lang):
                # A word two languages share (e.g. "Argentina") has no single answer: drop it.
                label[text] = LANG[lang] if text not in label else None
        pool = [({"x": t}, lab) for t, lab in sorted(label.items()) if lab is not None]
        return _draw(pool, rng, n)
    return items


@cache
def _lang_texts(kind: str, lang: str) -> frozenset[str]:
    if kind == "month":
        return frozenset({format_date(dt.date(2001, m, d), p, locale=lang)
                          for m in range(1, 13) for d in (1, 2, 3, 4, 5, 6, 7)
                          for p in ("MMMM", "EEEE")})
    if kind == "number":
        return frozenset(num2words(k, lang=lang) for k in range(11, 100))
    return frozenset(_names("country", lang).values())


def _country_fact(fact: str) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        en = _names("country", "en")
        langs = Locale.parse("en").languages
        pool = []
        for code, name in sorted(en.items()):
            if fact == "currency":
                cur = get_territory_currencies(code, dt.date(2020, 1, 1))
                ans = cur[0] if cur else None
            elif fact == "language":
                off = [lg for lg in get_official_languages(code) if lg in langs]
                ans = langs[off[0]] if off else None
            elif fact == "code":
                ans = code
            else:  # from code to name
                pool.append(({"x": code}, name))
                continue
            if ans:
                pool.append(({"x": name}, ans))
        return _draw(pool, rng, n)
    return items


# ---- the catalogue ------------------------------------------------------------------------

def all_specs() -> list[TaskSpec]:
    """Every demo task, family by family (the order is part of the suite's identity)."""
    s: list[TaskSpec] = []
    s += _translation_family("country_names", "country name",
                             ["en_fr", "en_de", "en_es", "en_it", "en_nl", "fr_en", "de_en",
                              "es_en"], lambda a, b: _name_pairs("country", a, b))
    s += _translation_family("language_names", "language name",
                             ["en_fr", "en_de", "en_es", "en_it", "en_nl", "fr_en", "de_en",
                              "es_en"], lambda a, b: _name_pairs("language", a, b))
    s += _translation_family("currency_names", "currency name",
                             ["en_fr", "en_de", "en_es", "en_it", "de_en"],
                             lambda a, b: _name_pairs("currency", a, b))
    s += _translation_family("month_names", "date", ["en_fr", "en_de", "en_es",
                             "en_it", "fr_en", "de_en"],
                             lambda a, b: _date_pairs("d MMMM", a, b))
    s += _translation_family("weekday_names", "weekday and day",
                             ["en_fr", "en_de", "en_es", "en_it", "fr_en"],
                             lambda a, b: _date_pairs("EEEE d", a, b))

    words_t = ("Write the number {x} in {lang} words.", "Spell out {x} in {lang}.",
               "{x} written out in {lang}:", "How is the number {x} written in {lang}?")
    for lang in ["en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da"]:
        s.append(TaskSpec(f"number_words_{lang}", "number_words", {"lang": LANG[lang]},
                          words_t, _n2w("cardinal", lang, 0, 1000)))
    ord_t = ("Write the ordinal of {x} in {lang} words.", "Give the {lang} ordinal word for {x}.",
             "Ordinal number {x}, written in {lang}:", "Spell the ordinal number {x} in {lang}.")
    for lang in ["en", "fr", "de", "es", "it", "nl"]:
        s.append(TaskSpec(f"ordinal_words_{lang}", "ordinal_words", {"lang": LANG[lang]},
                          ord_t, _n2w("ordinal", lang, 1, 200)))
    rev_t = ('Write the {lang} number "{x}" in digits.', 'Which number is "{x}" in {lang}?',
             "{lang} number words: {x}\nDigits:", 'Convert "{x}" ({lang}) to a numeral.')
    for lang in ["en", "fr", "de", "es", "it"]:
        s.append(TaskSpec(f"words_to_numbers_{lang}", "words_to_numbers", {"lang": LANG[lang]},
                          rev_t, _n2w("cardinal", lang, 0, 1000, reverse=True)))

    num_t = ("Format the number {x} as it is written in {region}.",
             "Write {x} with the digit grouping used in {region}.",
             "{x} in {region} number format:", "How is {x} written in {region}?")
    for loc in ["en_US", "fr_FR", "de_DE", "es_ES", "it_IT", "en_IN", "pt_BR", "sv_SE"]:
        s.append(TaskSpec(f"number_format_{loc}", "number_format", {"region": _region(loc)},
                          num_t, _formatted("number", loc)))
    date_t = ("Write the date {x} in the {style} {region} format.",
              "Format {x} as a {style} date for {region}.",
              "{x} as a {style} {region} date:",
              "How is {x} written as a {style} date in {region}?")
    for loc, style in [("en_US", "long"), ("en_GB", "long"), ("fr_FR", "long"),
                       ("de_DE", "long"), ("es_ES", "long"), ("it_IT", "long"),
                       ("en_US", "short"), ("de_DE", "short"), ("fr_FR", "short")]:
        s.append(TaskSpec(f"date_format_{style}_{loc}", "date_format",
                          {"region": _region(loc), "style": style},
                          date_t, _formatted(f"date:{style}", loc)))
    cur_t = ("Write {x} {cur} as a price in {region}.", "Format the amount {x} {cur} for {region}.",
             "{x} {cur}, {region} style:", "How is {x} {cur} shown in {region}?")
    for loc, cur in [("en_US", "USD"), ("fr_FR", "EUR"), ("de_DE", "EUR"), ("ja_JP", "JPY"),
                     ("en_GB", "GBP"), ("it_IT", "EUR")]:
        s.append(TaskSpec(f"currency_format_{loc}_{cur}", "currency_format",
                          {"region": _region(loc), "cur": cur}, cur_t,
                          _formatted("currency", loc, cur)))

    arith = [
        ("add_2digit", ("What is {a} + {b}?", "Add {a} and {b}.", "{a} plus {b} equals",
                        "Compute the sum of {a} and {b}."),
         _binary_op(lambda x, y: x + y, (10, 100), (10, 100))),
        ("add_3digit", ("What is {a} + {b}?", "Sum: {a} + {b} =", "Add {b} to {a}.",
                        "Find the total of {a} and {b}."),
         _binary_op(lambda x, y: x + y, (100, 1000), (100, 1000))),
        ("subtract", ("What is {a} - {b}?", "Subtract {b} from {a}.", "{a} minus {b} is",
                      "Compute {a} - {b}."),
         _binary_op(lambda x, y: x - y, (50, 200), (1, 50))),
        ("multiply", ("What is {a} * {b}?", "Multiply {a} by {b}.", "{a} times {b} equals",
                      "Compute the product of {a} and {b}."),
         _binary_op(lambda x, y: x * y, (2, 10), (10, 100))),
        ("divide", ("What is {a} divided by {b}, rounded down?", "Integer division: {a} // {b} =",
                    "How many times does {b} fit into {a}?", "Compute floor({a} / {b})."),
         _binary_op(lambda x, y: x // y, (20, 200), (2, 10))),
        ("modulo", ("What is {a} mod {b}?", "Remainder of {a} divided by {b}:",
                    "Compute {a} % {b}.", "What is left when {a} is divided by {b}?"),
         _binary_op(lambda x, y: x % y, (20, 200), (2, 10))),
        ("max_of_two", ("Which is larger, {a} or {b}?", "Return the maximum of {a} and {b}.",
                        "max({a}, {b}) =", "Pick the bigger number: {a}, {b}."),
         _binary_op(max, (0, 1000), (0, 1000))),
        ("abs_difference", ("How far apart are {a} and {b}?", "|{a} - {b}| =",
                            "Give the absolute difference of {a} and {b}.",
                            "Distance between {a} and {b} on the number line:"),
         _binary_op(lambda x, y: abs(x - y), (0, 100), (0, 100))),
        ("square", ("What is {x} squared?", "Compute {x}^2.", "{x} times itself is",
                    "Square the number {x}."),
         _int_task(2, 100, lambda k: (str(k), str(k * k)))),
    ]
    for name, templates, items in arith:
        s.append(TaskSpec(f"arith_{name}", "arithmetic", {}, templates, items))

    vowels = set("aeiou")
    strings = [
        ("reverse", "Reverse the letters of", lambda w: w[::-1]),
        ("uppercase", "Write in capital letters:", str.upper),
        ("capitalize", "Capitalize the first letter of", str.capitalize),
        ("remove_vowels", "Remove every vowel (a, e, i, o, u) from",
         lambda w: "".join(c for c in w if c not in vowels)),
        ("double_letters", "Repeat each letter twice in", lambda w: "".join(c * 2 for c in w)),
        ("first_letter", "Give the first letter of", lambda w: w[0]),
        ("last_three", "Give the last three letters of", lambda w: w[-3:]),
        ("count_letters", "How many letters are in", lambda w: str(len(w))),
        ("sort_letters", "Sort alphabetically the letters of", lambda w: "".join(sorted(w))),
        ("vowels_only", "Keep only the vowels of", lambda w: "".join(c for c in w if c in vowels)
         or "(none)"),
    ]
    for name, verb, fn in strings:
        templates = (f"{verb} the word {{x}}.", f'{verb} "{{x}}".',
                     f"{verb} the word below.\nWord: {{x}}", f"{verb} this word: {{x}}")
        s.append(TaskSpec(f"string_{name}", "string_edits", {}, templates, _word_task(fn)))

    lists = [
        ("sort_ascending", "Sort in ascending order:", sorted),
        ("sort_descending", "Sort from largest to smallest:", lambda xs: sorted(xs, reverse=True)),
        ("reverse", "Reverse the order of the list", lambda xs: xs[::-1]),
        ("maximum", "Give the largest number in", max),
        ("minimum", "Give the smallest number in", min),
        ("sum", "Add up the numbers", sum),
        ("length", "How many numbers are in the list", len),
        ("first", "Give the first element of", lambda xs: xs[0]),
        ("last", "Give the last element of", lambda xs: xs[-1]),
        ("evens", "Keep only the even numbers of",
         lambda xs: [x for x in xs if x % 2 == 0] or "(none)"),
    ]
    for name, verb, fn in lists:
        templates = (f"{verb} {{x}}", f"List: {{x}}\n{verb} the list.", f"{verb} [{{x}}].",
                     f"Numbers: {{x}}. {verb} them.")
        s.append(TaskSpec(f"list_{name}", "list_ops", {}, templates, _list_task(fn)))

    classify = [
        ("even", "Is {x} an even number? Answer yes or no.",
         _yes_no(lambda k: k % 2 == 0, 0, 1000)),
        ("prime", "Is {x} a prime number? Answer yes or no.", _yes_no(_is_prime, 2, 500)),
        ("over_500", "Is {x} greater than 500? Answer yes or no.",
         _yes_no(lambda k: k > 500, 0, 1000)),
        ("div_by_3", "Is {x} divisible by 3? Answer yes or no.",
         _yes_no(lambda k: k % 3 == 0, 0, 1000)),
        ("leap_year", "Is {x} a leap year? Answer yes or no.",
         _yes_no(lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0), 1800, 2100)),
        ("square_number", "Is {x} a perfect square? Answer yes or no.",
         _yes_no(lambda k: math.isqrt(k) ** 2 == k, 1, 2000)),
        ("vowel_start", "Does the word {x} start with a vowel? Answer yes or no.",
         _word_yes_no(lambda w: w[0] in vowels)),
        ("long_word", "Does the word {x} have more than 7 letters? Answer yes or no.",
         _word_yes_no(lambda w: len(w) > 7)),
    ]
    for name, main, items in classify:
        question = main.split("?")[0] + "?"
        templates = (main, f"Question: {question}\nAnswer (yes/no):",
                     f"{question} Reply with yes or no.", f"yes or no: {question}")
        s.append(TaskSpec(f"classify_{name}", "classification", {}, templates, items))

    lid_t = ('Which language is "{x}"?', "Name the language of this word: {x}",
             'In which language is "{x}" written? Choose from English, French, German, '
             'Spanish, Italian.', "Language of {x}:")
    for kind, what in [("month", "month and weekday names"), ("number", "number words"),
                       ("country", "country names")]:
        s.append(TaskSpec(f"language_id_{kind}", "language_id", {"what": what}, lid_t,
                          _language_id(kind)))

    facts = [
        ("currency", ("What is the currency code of {x}?", "Currency used in {x} (ISO code):",
                      "Which currency does {x} use? Give the three-letter code.",
                      "{x} pays in which currency code?")),
        ("language", ("What is an official language of {x}?", "Official language of {x}:",
                      "Name a language that is official in {x}.",
                      "Which language is official in {x}?")),
        ("code", ("What is the two-letter country code of {x}?", "ISO code of {x}:",
                  "Give the ISO 3166 code for {x}.", "Country code for {x}?")),
        ("name", ("Which country has the code {x}?", "Country with ISO code {x}:",
                  "Name the country whose two-letter code is {x}.", "{x} is the code of")),
    ]
    for fact, templates in facts:
        s.append(TaskSpec(f"country_{fact}", "country_facts", {}, templates,
                          _country_fact(fact)))

    conv = [
        ("to_roman", ("Write {x} in Roman numerals.", "{x} as a Roman numeral:",
                      "Convert {x} to Roman numerals.", "Roman numeral for {x}?"),
         _int_task(1, 2000, lambda k: (str(k), _roman(k)))),
        ("from_roman", ("Which number is the Roman numeral {x}?", "{x} in Arabic digits:",
                        "Convert the Roman numeral {x} to a number.", "Value of {x}?"),
         _int_task(1, 2000, lambda k: (_roman(k), str(k)))),
        ("to_binary", ("Write {x} in binary.", "{x} in base 2:", "Convert {x} to binary.",
                       "Binary form of {x}?"),
         _int_task(2, 256, lambda k: (str(k), format(k, "b")))),
        ("from_binary", ("Which decimal number is binary {x}?", "Binary {x} in decimal:",
                         "Convert {x} from base 2 to base 10.", "Value of 0b{x}?"),
         _int_task(2, 256, lambda k: (format(k, "b"), str(k)))),
        ("to_hex", ("Write {x} in hexadecimal.", "{x} in base 16:", "Convert {x} to hex.",
                    "Hexadecimal form of {x}?"),
         _int_task(16, 4096, lambda k: (str(k), format(k, "x")))),
    ]
    for name, templates, items in conv:
        s.append(TaskSpec(f"numeral_{name}", "numeral_systems", {}, templates, items))
    return s
