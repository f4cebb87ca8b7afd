"""The built-in profiles: each is a named set of entries, and each entry is found by detectors.

A detector is a bounded pattern, found either at the occurrences of its anchors (literals every
match starts with, found by substring search) or by a search whose pattern starts with a
character class; both let the regex engine skip ordinary text at C speed, which one alternation
of all patterns cannot (`re` tries every branch at every position: 15x slower, measured). A check
may then confirm the candidate or name the entry it is (a card's brand).

No match is longer than MAX_MATCH_CHARS, so a stream scanner that holds back DECISION_CHARS
characters (a match and the one character its look-ahead reads) never lets part of one through.
A numeric match may not touch another digit, a token may not touch a character of its alphabet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from app.dlp.validators import credit_card_entry, iban_valid, ssn_valid
from app.dlp.vendor_keys import VENDOR_KEYS, generic_secret_entry

MAX_MATCH_CHARS = 255
# The anchors of numeric detectors: the starts of digit runs (found by substring search for each
# digit, far faster than any regex class), with `lead` letters allowed before them (IBAN).
DIGIT_RUNS = ("<digit runs>",)
# Numeric detectors also name `shapes`: literals of the text's shape (`detector._Text.shape`: every
# digit written `0`, every ASCII capital `A`) of which every match holds one. A few substring
# searches then skip a detector whose shapes are absent, or find its candidates directly.
DECISION_CHARS = MAX_MATCH_CHARS + 1
# A card number is 13 or more digits with at most single spaces or dashes between them. Text dense
# in dates and numbers has digit runs and separators everywhere ("2024-03-15 10:42"), so no shape
# skips the card detector there; with spaces and dashes deleted, though, 13 digits in a row are
# rare, and a substring search per window of the text finds the few windows that have them.
DENSE_WINDOW = 256
DENSE_MAX_CHARS = 64  # longer than any match of a `dense` detector (a card: 37 at most)

# A detector's check gets the matched value and answers the entry id it is, or None (not a finding).
Classify = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Detector:
    profile_id: str
    entry_id: str  # the entry it reports unless `classify` names another
    pattern: str  # `(?P<v>…)`, when present, is the value (what is redacted and classified)
    anchors: tuple[str, ...] = ()  # literals a match starts with; none: the pattern is searched
    fold: bool = False  # anchors are found in the lower-cased text, the pattern ignores case
    classify: Classify | None = None
    # Email: a match starts up to this many characters before its anchor (`@`), over `local`.
    back: int = 0
    local: str = ""
    lead: int = 0  # with DIGIT_RUNS: a match starts this many characters before the run
    shapes: tuple[str, ...] = ()  # with DIGIT_RUNS: shape literals, one of which every match holds
    shape_starts: bool = False  # ... and every match starts with (so they are the candidates)
    # With DIGIT_RUNS: every match holds this many digits with only spaces and dashes between
    # them, so candidates are the digit runs of the windows of text that have that (DENSE_WINDOW).
    dense: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    name: str
    entries: tuple[Entry, ...]
    detectors: tuple[Detector, ...]


def _only_if(check: Callable[[str], bool], entry_id: str) -> Classify:
    return lambda value: entry_id if check(value) else None


# "A digit not preceded by a digit", written digit-first so the search skips to digits fast.
_FIRST_DIGIT = r"\d(?<!\d\d)"
_CARD = _FIRST_DIGIT + r"(?:[ -]?\d){12,18}(?!\d)"
_IBAN = r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
_CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay")
_EMAIL_LOCAL = "A-Za-z0-9._%+-"
_GENERIC_VALUE = r"A-Za-z0-9_\-/+=."
_GENERIC_KEYWORDS = ("api_key", "api-key", "apikey", "secret", "token", "password", "passwd", "pwd")


def _ssn(sep: str) -> Detector:
    pattern = _FIRST_DIGIT + rf"\d\d{sep}\d\d{sep}\d{{4}}(?!\d)"
    return Detector(
        "us_ssn", "us_ssn.number", pattern, DIGIT_RUNS, classify=_only_if(ssn_valid, "us_ssn.number"),
        shapes=(f"000{sep}00{sep}0000",), shape_starts=True,
    )  # fmt: skip


def _vendor(entry: str) -> Detector:
    anchors, pattern, alphabet = VENDOR_KEYS[entry]
    # The look-behind follows the anchor (a fixed width for each), so the anchor comes first.
    branches = "|".join(f"{re.escape(a)}(?<![{alphabet}]{re.escape(a)})" for a in anchors)
    return Detector("api_keys", entry, f"(?:{branches}){pattern}(?![{alphabet}])", anchors)


PROFILES: dict[str, Profile] = {
    profile.id: profile
    for profile in (
        Profile(
            "credit_card",
            "Credit Card Numbers",
            tuple(Entry(f"credit_card.{brand}", f"{brand.title()} Card Number") for brand in _CARD_BRANDS),
            (
                # 13 digits or more, spaces and dashes aside: found by window, not where it starts.
                Detector(
                    "credit_card", "credit_card.visa", _CARD, DIGIT_RUNS, classify=credit_card_entry, dense=13
                ),
            ),
        ),
        Profile(
            "us_ssn",
            "US Social Security Numbers",
            (Entry("us_ssn.number", "US Social Security Number"),),
            (
                _ssn("-"),
                _ssn(" "),
                # A bare nine-digit number only shortly after the word.
                Detector(
                    "us_ssn", "us_ssn.number",
                    r"(?:ssn|social security)\D{0,32}?(?<!\d)(?P<v>\d{9})(?!\d)",
                    ("ssn", "social security"), fold=True, classify=_only_if(ssn_valid, "us_ssn.number"),
                ),
            ),
        ),
        Profile(
            "email",
            "Email Addresses",
            (Entry("email.address", "Email Address"),),
            (
                Detector(
                    "email", "email.address",
                    rf"[{_EMAIL_LOCAL}]{{1,64}}@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?\.){1,4}[A-Za-z]{2,24}(?![A-Za-z0-9-])",
                    ("@",), back=64, local=_EMAIL_LOCAL,
                ),
            ),
        ),
        Profile(
            "phone",
            "Phone Numbers",
            (Entry("phone.e164", "E.164 Phone Number"), Entry("phone.nanp", "North American Phone Number")),
            (
                Detector("phone", "phone.e164", r"\+(?<![\d+]\+)\d(?:[ .()-]{0,2}\d){7,14}(?!\d)", ("+",)),
                Detector("phone", "phone.nanp", r"\((?<!\d\()[2-9]\d\d\) ?[2-9]\d\d-\d{4}(?!\d)", ("(",)),
                Detector(
                    "phone", "phone.nanp", r"[2-9](?<!\d\d)\d\d-[2-9]\d\d-\d{4}(?!\d)", DIGIT_RUNS,
                    shapes=("000-000-0000",), shape_starts=True,
                ),
                Detector(
                    "phone", "phone.nanp", r"[2-9](?<!\d\d)\d\d\.[2-9]\d\d\.\d{4}(?!\d)", DIGIT_RUNS,
                    shapes=("000.000.0000",), shape_starts=True,
                ),
            ),
        ),
        Profile(
            "iban",
            "IBAN",
            (Entry("iban.number", "International Bank Account Number"),),
            (
                Detector(
                    "iban", "iban.number",
                    _IBAN, DIGIT_RUNS, classify=_only_if(iban_valid, "iban.number"), lead=2,
                    shapes=("AA00",), shape_starts=True,
                ),
            ),
        ),
        Profile(
            "aws_keys",
            "AWS Credentials",
            (
                Entry("aws_keys.access_key_id", "AWS Access Key ID"),
                Entry("aws_keys.secret_access_key", "AWS Secret Access Key"),
            ),
            (
                Detector(
                    "aws_keys", "aws_keys.access_key_id",
                    r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
                    ("AKIA", "ASIA", "ABIA", "ACCA"),
                ),
                Detector(
                    "aws_keys", "aws_keys.secret_access_key",
                    r"(?:aws_secret_access_key|secret_access_key|aws secret)[\s\S]{0,64}?"
                    r"(?<![A-Za-z0-9/+])(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
                    ("aws_secret_access_key", "secret_access_key", "aws secret"), fold=True,
                ),
            ),
        ),
        Profile(
            "api_keys",
            "API Keys and Secrets",
            tuple(
                Entry(entry, name)
                for entry, name in (
                    ("api_keys.anthropic", "Anthropic API Key"), ("api_keys.openai", "OpenAI API Key"),
                    ("api_keys.github", "GitHub Token"), ("api_keys.slack", "Slack Token"),
                    ("api_keys.google", "Google API Key"), ("api_keys.stripe", "Stripe API Key"),
                    ("api_keys.jwt", "JSON Web Token"), ("api_keys.generic", "Generic Secret"),
                )
            ),
            (
                *(_vendor(entry) for entry in VENDOR_KEYS),
                Detector(
                    "api_keys", "api_keys.generic",
                    "(?:" + "|".join(_GENERIC_KEYWORDS) + r")[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?"
                    rf"(?P<v>[{_GENERIC_VALUE}]{{16,200}})(?![{_GENERIC_VALUE}])",
                    _GENERIC_KEYWORDS, fold=True, classify=generic_secret_entry,
                ),
            ),
        ),
        Profile(
            "private_keys",
            "Private Keys",
            (Entry("private_keys.pem", "PEM Private Key"),),
            (
                Detector(
                    "private_keys", "private_keys.pem",
                    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
                    ("-----BEGIN ",),
                ),
            ),
        ),
    )
}  # fmt: skip

ENTRY_PROFILE: dict[str, str] = {entry.id: p.id for p in PROFILES.values() for entry in p.entries}
