"""The task families of the demo suite: what each task asks and where its answers come from.

Every task is a :class:`TaskSpec`: a family, fields that fill its instruction templates (e.g.
the language pair), the family's instruction templates, and an ``items`` function drawing
``n`` distinct ``(slots, answer)`` pairs from a seeded :class:`random.Random` (the sources are
in :mod:`zsg_lib.data.demo_items`).

>>> import random
>>> specs = all_specs()
>>> len(specs) >= 120, len({s.family for s in specs}) >= 15
(True, True)
>>> spec = next(s for s in specs if s.name == "month_names_en_fr")
>>> spec.items(random.Random(0), 2)[0][1]
'24 juillet'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .demo_items import (
    LANG,
    Items,
    binary_op,
    country_fact,
    date_pairs,
    formatted,
    int_task,
    is_prime,
    language_id,
    list_task,
    n2w,
    name_pairs,
    region,
    roman,
    word_task,
    word_yes_no,
    yes_no,
)


@dataclass(frozen=True)
class TaskSpec:
    """One demo task: name, family, template fields, candidate templates, item source."""

    name: str
    family: str
    fields: dict[str, str]
    templates: tuple[str, ...]
    items: Items = field(repr=False, compare=False)




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


# ---- the catalogue ------------------------------------------------------------------------

def all_specs() -> list[TaskSpec]:
    """Every demo task, family by family (the order is part of the suite's identity)."""
    s: list[TaskSpec] = []
    s += _translation_family("country_names", "country name",
                             ["en_fr", "en_de", "en_es", "en_it", "en_nl", "fr_en", "de_en",
                              "es_en"], lambda a, b: name_pairs("country", a, b))
    s += _translation_family("language_names", "language name",
                             ["en_fr", "en_de", "en_es", "en_it", "en_nl", "fr_en", "de_en",
                              "es_en"], lambda a, b: name_pairs("language", a, b))
    s += _translation_family("currency_names", "currency name",
                             ["en_fr", "en_de", "en_es", "en_it", "de_en"],
                             lambda a, b: name_pairs("currency", a, b))
    s += _translation_family("month_names", "date", ["en_fr", "en_de", "en_es",
                             "en_it", "fr_en", "de_en"],
                             lambda a, b: date_pairs("d MMMM", a, b))
    s += _translation_family("weekday_names", "weekday and day",
                             ["en_fr", "en_de", "en_es", "en_it", "fr_en"],
                             lambda a, b: date_pairs("EEEE d", a, b))

    words_t = ("Write the number {x} in {lang} words.", "Spell out {x} in {lang}.",
               "{x} written out in {lang}:", "How is the number {x} written in {lang}?")
    for lang in ["en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da"]:
        s.append(TaskSpec(f"number_words_{lang}", "number_words", {"lang": LANG[lang]},
                          words_t, n2w("cardinal", lang, 0, 1000)))
    ord_t = ("Write the ordinal of {x} in {lang} words.", "Give the {lang} ordinal word for {x}.",
             "Ordinal number {x}, written in {lang}:", "Spell the ordinal number {x} in {lang}.")
    for lang in ["en", "fr", "de", "es", "it", "nl"]:
        s.append(TaskSpec(f"ordinal_words_{lang}", "ordinal_words", {"lang": LANG[lang]},
                          ord_t, n2w("ordinal", lang, 1, 200)))
    rev_t = ('Write the {lang} number "{x}" in digits.', 'Which number is "{x}" in {lang}?',
             "{lang} number words: {x}\nDigits:", 'Convert "{x}" ({lang}) to a numeral.')
    for lang in ["en", "fr", "de", "es", "it"]:
        s.append(TaskSpec(f"words_to_numbers_{lang}", "words_to_numbers", {"lang": LANG[lang]},
                          rev_t, n2w("cardinal", lang, 0, 1000, reverse=True)))

    num_t = ("Format the number {x} as it is written in {region}.",
             "Write {x} with the digit grouping used in {region}.",
             "{x} in {region} number format:", "How is {x} written in {region}?")
    for loc in ["en_US", "fr_FR", "de_DE", "es_ES", "it_IT", "en_IN", "pt_BR", "sv_SE"]:
        s.append(TaskSpec(f"number_format_{loc}", "number_format", {"region": region(loc)},
                          num_t, formatted("number", loc)))
    date_t = ("Write the date {x} in the {style} {region} format.",
              "Format {x} as a {style} date for {region}.",
              "{x} as a {style} {region} date:",
              "How is {x} written as a {style} date in {region}?")
    for loc, style in [("en_US", "long"), ("en_GB", "long"), ("fr_FR", "long"),
                       ("de_DE", "long"), ("es_ES", "long"), ("it_IT", "long"),
                       ("en_US", "short"), ("de_DE", "short"), ("fr_FR", "short")]:
        s.append(TaskSpec(f"date_format_{style}_{loc}", "date_format",
                          {"region": region(loc), "style": style},
                          date_t, formatted(f"date:{style}", loc)))
    cur_t = ("Write {x} {cur} as a price in {region}.", "Format the amount {x} {cur} for {region}.",
             "{x} {cur}, {region} style:", "How is {x} {cur} shown in {region}?")
    for loc, cur in [("en_US", "USD"), ("fr_FR", "EUR"), ("de_DE", "EUR"), ("ja_JP", "JPY"),
                     ("en_GB", "GBP"), ("it_IT", "EUR")]:
        s.append(TaskSpec(f"currency_format_{loc}_{cur}", "currency_format",
                          {"region": region(loc), "cur": cur}, cur_t,
                          formatted("currency", loc, cur)))

    arith = [
        ("add_2digit", ("What is {a} + {b}?", "Add {a} and {b}.", "{a} plus {b} equals",
                        "Compute the sum of {a} and {b}."),
         binary_op(lambda x, y: x + y, (10, 100), (10, 100))),
        ("add_3digit", ("What is {a} + {b}?", "Sum: {a} + {b} =", "Add {b} to {a}.",
                        "Find the total of {a} and {b}."),
         binary_op(lambda x, y: x + y, (100, 1000), (100, 1000))),
        ("subtract", ("What is {a} - {b}?", "Subtract {b} from {a}.", "{a} minus {b} is",
                      "Compute {a} - {b}."),
         binary_op(lambda x, y: x - y, (50, 200), (1, 50))),
        ("multiply", ("What is {a} * {b}?", "Multiply {a} by {b}.", "{a} times {b} equals",
                      "Compute the product of {a} and {b}."),
         binary_op(lambda x, y: x * y, (2, 10), (10, 100))),
        ("divide", ("What is {a} divided by {b}, rounded down?", "Integer division: {a} // {b} =",
                    "How many times does {b} fit into {a}?", "Compute floor({a} / {b})."),
         binary_op(lambda x, y: x // y, (20, 200), (2, 10))),
        ("modulo", ("What is {a} mod {b}?", "Remainder of {a} divided by {b}:",
                    "Compute {a} % {b}.", "What is left when {a} is divided by {b}?"),
         binary_op(lambda x, y: x % y, (20, 200), (2, 10))),
        ("max_of_two", ("Which is larger, {a} or {b}?", "Return the maximum of {a} and {b}.",
                        "max({a}, {b}) =", "Pick the bigger number: {a}, {b}."),
         binary_op(max, (0, 1000), (0, 1000))),
        ("abs_difference", ("How far apart are {a} and {b}?", "|{a} - {b}| =",
                            "Give the absolute difference of {a} and {b}.",
                            "Distance between {a} and {b} on the number line:"),
         binary_op(lambda x, y: abs(x - y), (0, 100), (0, 100))),
        ("square", ("What is {x} squared?", "Compute {x}^2.", "{x} times itself is",
                    "Square the number {x}."),
         int_task(2, 100, lambda k: (str(k), str(k * k)))),
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
        s.append(TaskSpec(f"string_{name}", "string_edits", {}, templates, word_task(fn)))

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
        s.append(TaskSpec(f"list_{name}", "list_ops", {}, templates, list_task(fn)))

    classify = [
        ("even", "Is {x} an even number? Answer yes or no.",
         yes_no(lambda k: k % 2 == 0, 0, 1000)),
        ("prime", "Is {x} a prime number? Answer yes or no.", yes_no(is_prime, 2, 500)),
        ("over_500", "Is {x} greater than 500? Answer yes or no.",
         yes_no(lambda k: k > 500, 0, 1000)),
        ("div_by_3", "Is {x} divisible by 3? Answer yes or no.",
         yes_no(lambda k: k % 3 == 0, 0, 1000)),
        ("leap_year", "Is {x} a leap year? Answer yes or no.",
         yes_no(lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0), 1800, 2100)),
        ("square_number", "Is {x} a perfect square? Answer yes or no.",
         yes_no(lambda k: math.isqrt(k) ** 2 == k, 1, 2000)),
        ("vowel_start", "Does the word {x} start with a vowel? Answer yes or no.",
         word_yes_no(lambda w: w[0] in vowels)),
        ("long_word", "Does the word {x} have more than 7 letters? Answer yes or no.",
         word_yes_no(lambda w: len(w) > 7)),
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
                          language_id(kind)))

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
                          country_fact(fact)))

    conv = [
        ("to_roman", ("Write {x} in Roman numerals.", "{x} as a Roman numeral:",
                      "Convert {x} to Roman numerals.", "Roman numeral for {x}?"),
         int_task(1, 2000, lambda k: (str(k), roman(k)))),
        ("from_roman", ("Which number is the Roman numeral {x}?", "{x} in Arabic digits:",
                        "Convert the Roman numeral {x} to a number.", "Value of {x}?"),
         int_task(1, 2000, lambda k: (roman(k), str(k)))),
        ("to_binary", ("Write {x} in binary.", "{x} in base 2:", "Convert {x} to binary.",
                       "Binary form of {x}?"),
         int_task(2, 256, lambda k: (str(k), format(k, "b")))),
        ("from_binary", ("Which decimal number is binary {x}?", "Binary {x} in decimal:",
                         "Convert {x} from base 2 to base 10.", "Value of 0b{x}?"),
         int_task(2, 256, lambda k: (format(k, "b"), str(k)))),
        ("to_hex", ("Write {x} in hexadecimal.", "{x} in base 16:", "Convert {x} to hex.",
                    "Hexadecimal form of {x}?"),
         int_task(16, 4096, lambda k: (str(k), format(k, "x")))),
    ]
    for name, templates, items in conv:
        s.append(TaskSpec(f"numeral_{name}", "numeral_systems", {}, templates, items))
    return s
