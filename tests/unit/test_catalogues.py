"""Every catalogue says everything English says, with the same placeholders and its own language's plural forms.

Staff catalogues (``web_client/i18n/staff-<code>.json``, nested) are checked against ``staff-en.json``; the
customer's (``<code>.json``, flat) against ``en.json``. A plural is an object with an ``other`` key; its keys must
be exactly the categories Intl.PluralRules has for the language (CLDR; the table below is what Node and Chromium
answer, and one test asks Node when it is installed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

I18N = Path(__file__).resolve().parents[2] / "web_client" / "i18n"
LANGUAGES = ("nl", "cs", "fa", "nb")
# Intl.PluralRules(code).resolvedOptions().pluralCategories, for cardinal numbers.
PLURALS = {
    "en": {"one", "other"},
    "nl": {"one", "other"},
    "cs": {"one", "few", "many", "other"},
    "fa": {"one", "other"},
    "nb": {"one", "other"},
}
DIRECTION = {"en": "ltr", "nl": "ltr", "cs": "ltr", "fa": "rtl", "nb": "ltr"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


CATEGORIES = {"zero", "one", "two", "few", "many", "other"}


def is_plural(value: Any) -> bool:
    """A plural set: "other" and only CLDR categories as keys, all strings ({"order": …, "other": …} is a group)."""
    return (
        isinstance(value, dict)
        and "other" in value
        and set(value) <= CATEGORIES
        and all(isinstance(text, str) for text in value.values())
    )


def flatten(strings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys as paths ("qa.list.title"); a plural object is one entry."""
    out: dict[str, Any] = {}
    for key, value in strings.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not is_plural(value):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def placeholders(value: Any) -> set[str]:
    texts = value.values() if is_plural(value) else [value]
    return {name for text in texts if isinstance(text, str) for name in PLACEHOLDER.findall(text)}


def problems(english: dict[str, Any], other: dict[str, Any], code: str) -> list[str]:
    """What ``other`` (in ``code``) gets wrong against ``english``; empty when nothing."""
    en, it = flatten(english), flatten(other)
    found = [f"missing: {key}" for key in sorted(en.keys() - it.keys())]
    found += [f"not in English: {key}" for key in sorted(it.keys() - en.keys())]
    for key in sorted(en.keys() & it.keys()):
        mine, theirs = it[key], en[key]
        if is_plural(theirs) != is_plural(mine) or not isinstance(mine, (str, dict)):
            found.append(f"{key}: a plural in one and not the other")
            continue
        if placeholders(mine) != placeholders(theirs):
            found.append(f"{key}: placeholders {sorted(placeholders(mine))}, English {sorted(placeholders(theirs))}")
        if is_plural(mine):
            if set(mine) != PLURALS[code]:
                found.append(f"{key}: plural forms {sorted(mine)}, {code} has {sorted(PLURALS[code])}")
            for form, text in mine.items():
                if placeholders(text) - placeholders(theirs):
                    found.append(f"{key}.{form}: a placeholder English does not have")
        elif not mine.strip() and theirs.strip():
            found.append(f"{key}: empty")
    return found


def load(name: str) -> dict[str, Any]:
    strings = json.loads((I18N / name).read_text(encoding="utf-8"))
    assert isinstance(strings, dict)
    return strings


@pytest.mark.parametrize("code", LANGUAGES)
def test_each_staff_catalogue_has_every_english_key_with_the_same_placeholders(code: str) -> None:
    english, other = load("staff-en.json"), load(f"staff-{code}.json")
    assert problems(english, other, code) == []
    assert other["locale"] == code and other["dir"] == DIRECTION[code]


@pytest.mark.parametrize("code", LANGUAGES)
def test_each_customer_catalogue_has_every_english_key_with_the_same_placeholders(code: str) -> None:
    assert problems(load("en.json"), load(f"{code}.json"), code) == []


def test_the_english_catalogues_use_the_english_plural_forms() -> None:
    assert problems(load("staff-en.json"), load("staff-en.json"), "en") == []
    assert problems(load("en.json"), load("en.json"), "en") == []


def test_the_checker_finds_a_missing_key_an_extra_key_a_changed_placeholder_and_wrong_plural_forms() -> None:
    english = {
        "a": {"title": "Calls", "waiting": {"one": "{count} waits", "other": "{count} wait"}},
        "greeting": "Hello {name}",
    }
    good = {
        "a": {
            "title": "Hovory",
            "waiting": {"one": "{count}", "few": "{count}", "many": "{count}", "other": "{count}"},
        },
        "greeting": "Ahoj {name}",
    }
    assert problems(english, good, "cs") == []
    missing = {"a": {"waiting": good["a"]["waiting"]}, "greeting": "Ahoj {name}"}
    assert problems(english, missing, "cs") == ["missing: a.title"]
    extra = {**good, "farewell": "Nashle"}
    assert problems(english, extra, "cs") == ["not in English: farewell"]
    renamed = {**good, "greeting": "Ahoj {jmeno}"}
    assert problems(english, renamed, "cs") == ["greeting: placeholders ['jmeno'], English ['name']"]
    english_forms = {
        "a": {"title": "Hovory", "waiting": {"one": "{count}", "other": "{count}"}},
        "greeting": "Ahoj {name}",
    }
    assert problems(english, english_forms, "cs") == [
        "a.waiting: plural forms ['one', 'other'], cs has ['few', 'many', 'one', 'other']"
    ]
    not_plural = {"a": {"title": "Hovory", "waiting": "{count}"}, "greeting": "Ahoj {name}"}
    assert problems(english, not_plural, "cs") == ["a.waiting: a plural in one and not the other"]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_plural_table_is_what_intl_plural_rules_answers() -> None:
    script = "console.log(JSON.stringify(Object.fromEntries(process.argv.slice(1).map(c => "
    script += "[c, new Intl.PluralRules(c).resolvedOptions().pluralCategories]))))"
    answer = subprocess.run(["node", "-e", script, *PLURALS], capture_output=True, text=True, check=True, timeout=30)
    assert {code: set(forms) for code, forms in json.loads(answer.stdout).items()} == PLURALS
