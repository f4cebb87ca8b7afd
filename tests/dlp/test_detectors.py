"""The detectors against a table of positive and negative samples per entry."""

from __future__ import annotations

import pytest

from app.dlp.detector import detector_for
from app.dlp.profiles import PROFILES

ALL = detector_for(frozenset(PROFILES))
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

POSITIVE = [
    ("credit_card.visa", "pay with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
    ("credit_card.visa", "card 4012888888881881.", "4012888888881881"),
    ("credit_card.mastercard", "mc 5555-5555-5555-4444", "5555-5555-5555-4444"),
    ("credit_card.mastercard", "mc 2223003122003222", "2223003122003222"),
    ("credit_card.amex", "amex 378282246310005", "378282246310005"),
    ("credit_card.discover", "disc 6011111111111117", "6011111111111117"),
    ("credit_card.jcb", "jcb 3530111333300000", "3530111333300000"),
    ("credit_card.diners", "diners 30569309025904", "30569309025904"),
    ("credit_card.unionpay", "up 6200000000000005", "6200000000000005"),
    ("us_ssn.number", "ssn 123-45-6789", "123-45-6789"),
    ("us_ssn.number", "id 123 45 6789 here", "123 45 6789"),
    ("us_ssn.number", "my SSN is 123456789", "123456789"),
    ("us_ssn.number", "Social Security number: 123456789", "123456789"),
    ("email.address", "write to bob.smith+x@mail.example.co.uk now", "bob.smith+x@mail.example.co.uk"),
    ("phone.e164", "call +1 (415) 555-2671", "+1 (415) 555-2671"),
    ("phone.e164", "or +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone.nanp", "tel (415) 555-2671", "(415) 555-2671"),
    ("phone.nanp", "tel 415-555-2671", "415-555-2671"),
    ("phone.nanp", "tel 415.555.2671", "415.555.2671"),
    ("iban.number", "iban DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"),
    ("iban.number", "iban GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("iban.number", "NO9386011117947", "NO9386011117947"),
    ("aws_keys.access_key_id", "id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_keys.secret_access_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("api_keys.anthropic", "key sk-ant-api03-abcdefghijklmnopqrstuv", "sk-ant-api03-abcdefghijklmnopqrstuv"),
    ("api_keys.openai", "key sk-proj-abcdefghijklmnopqrstuvwxyz12", "sk-proj-abcdefghijklmnopqrstuvwxyz12"),
    ("api_keys.openai", "key sk-abcdefghijklmnopqrstuvwxyz12", "sk-abcdefghijklmnopqrstuvwxyz12"),
    ("api_keys.github", "gh ghp_" + "a1" * 18, "ghp_" + "a1" * 18),
    ("api_keys.github", "pat github_pat_11ABCDEFG0123456789_abcd", "github_pat_11ABCDEFG0123456789_abcd"),
    ("api_keys.slack", "slack xoxb-1234567890-abc", "xoxb-1234567890-abc"),
    ("api_keys.google", "g AIzaSyA1234567890abcdefghijklmnopqrstuv",
     "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("api_keys.stripe", "s sk_live_abcdefghijklmnop1234", "sk_live_abcdefghijklmnop1234"),
    ("api_keys.jwt", f"bearer {JWT}", JWT),
    ("api_keys.generic", 'password: "hunter2hunter2abc9"', "hunter2hunter2abc9"),
    ("api_keys.generic", "API_KEY=abcd1234efgh5678ijkl", "abcd1234efgh5678ijkl"),
    ("private_keys.pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl", "-----BEGIN OPENSSH PRIVATE KEY-----"),
    ("private_keys.pem", "-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----"),
]  # fmt: skip

NEGATIVE = [
    ("Luhn-invalid card", "pay with 4111 1111 1111 1112 today"),
    ("card touching a digit", "x41111111111111112"),
    ("unknown brand", "9111111111111119"),
    ("SSN area 000", "ssn 000-45-6789"),
    ("SSN area 666", "ssn 666-45-6789"),
    ("SSN area 9xx", "ssn 912-45-6789"),
    ("SSN group 00", "ssn 123-00-6789"),
    ("SSN serial 0000", "ssn 123-45-0000"),
    ("bare nine digits without the word", "order 123456789 shipped"),
    ("bare SSN too far from the word", "ssn" + "x" * 40 + " 123456789"),
    ("email without TLD", "bob@localhost"),
    ("email with a one-letter TLD", "bob@example.c"),
    ("NANP exchange starting with 1", "415-155-2671"),
    ("NANP area starting with 1", "115-555-2671"),
    ("phone with too few digits", "+1 234 567"),
    ("IBAN with a wrong check", "DE88 3704 0044 0532 0130 00"),
    ("IBAN of the wrong length", "DE89 3704 0044 0532 0130 0"),
    ("IBAN of an unknown country", "QQ89 3704 0044 0532 0130 00"),
    ("AWS id too short", "AKIAIOSFODNN7EXAMP"),
    ("AWS id inside a word", "XAKIAIOSFODNN7EXAMPLE"),
    ("AWS secret without its keyword", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("OpenAI key too short", "sk-abc123"),
    ("GitHub token too short", "ghp_abc"),
    ("Google key too short", "AIzaSyA123"),
    ("Stripe key of another mode", "sk_prod_abcdefghijklmnop1234"),
    ("JWT with short parts", "eyJhbGci.eyJzdWIi.abc"),
    ("generic value without a digit", "password=abcdefghijklmnopqrs"),
    ("generic value too short", "token=abc123"),
    ("max_tokens is not a secret", '"max_tokens": 1024000000000000000'),
    ("public key", "-----BEGIN PUBLIC KEY-----"),
    ("plain prose", "Please summarise the quarterly report in 3 bullet points by 2024-05-01."),
]


@pytest.mark.parametrize(
    ("entry", "text", "secret"), POSITIVE, ids=[p[0] + ":" + p[2][:12] for p in POSITIVE]
)
def test_each_entry_finds_its_samples(entry: str, text: str, secret: str) -> None:
    found = [(m.entry_id, text[m.start : m.end]) for m in ALL.scan(text)]
    assert (entry, secret) in found


@pytest.mark.parametrize(("why", "text"), NEGATIVE, ids=[n[0] for n in NEGATIVE])
def test_near_misses_are_not_findings(why: str, text: str) -> None:
    assert ALL.scan(text) == [], why


def test_only_the_profiles_asked_for_are_searched() -> None:
    text = "bob@example.com and 4111 1111 1111 1111"
    assert [m.entry_id for m in detector_for(frozenset({"email"})).scan(text)] == ["email.address"]


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_a_growing_text_finds_what_the_whole_text_has(step: int) -> None:
    """The stream path: text fed in small pieces, decided only where enough follows."""
    text = "x " * 300 + "key sk-proj-abcdefghijklmnopqrstuvwxyz12 and 4111-1111-1111-1111 " + "y " * 300
    positions = [0] * ALL.size
    found = []
    for end in range(step, len(text) + step, step):
        piece = text[: min(end, len(text))]
        matches, positions = ALL.scan_from(piece, positions, len(piece) - 256)
        found += matches
    matches, _ = ALL.scan_from(text, positions, len(text) + 300)
    found += matches
    assert sorted(found, key=lambda m: m.start) == ALL.scan(text)
