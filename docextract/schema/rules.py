"""What each grammar backend does with each JSON Schema keyword: the one table behind the
schema compiler (:mod:`.compiler`), ``docextract schema check``, ``POST /v1/schema/check``
and the README's "Checked at load time" section (:func:`rules_markdown`).

A keyword is

* ``enforced``: kept in the engine schema; the backend's grammar guarantees it
  (tests/test_schema_keywords.py generates under it on the real engine, for both backends);
* ``validated``: left out of the engine schema (the backend ignores it, or vLLM or the
  backend refuses it); the output is checked against it after generation and reported
  ``valid: false`` when it breaks it;
* ``annotation``: neither (an unknown ``format``: JSON Schema treats it as an annotation);
* ``refused``: the schema cannot be used at all (a remote ``$ref``, say).

The statuses were probed on vLLM 0.32 with xgrammar 0.2.8 and llguidance 1.7.6 (each
grammar asked whether it accepts an instance that breaks the keyword), and mirror vLLM's
``has_xgrammar_unsupported_json_features`` / ``has_guidance_unsupported_json_features``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ANNOTATION",
    "APPROXIMATE_FORMATS",
    "BACKENDS",
    "ENFORCED",
    "GUIDANCE_FORMATS",
    "REFUSED",
    "RULES",
    "VALIDATED",
    "XGRAMMAR_FORMATS",
    "README_END",
    "README_START",
    "KeywordRule",
    "Status",
    "rules_markdown",
    "update_readme",
]

Status = Literal["enforced", "validated", "annotation", "refused"]
ENFORCED: Status = "enforced"
VALIDATED: Status = "validated"
ANNOTATION: Status = "annotation"
REFUSED: Status = "refused"
BACKENDS = ("xgrammar", "guidance")

#: String formats each backend turns into a grammar (xgrammar: vLLM's STRING_SUPPORTED_FORMATS;
#: guidance: those llguidance 1.7.6 compiles).
XGRAMMAR_FORMATS = frozenset(
    {
        "email",
        "date",
        "time",
        "date-time",
        "duration",
        "ipv4",
        "ipv6",
        "hostname",
        "uuid",
        "uri",
        "uri-reference",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
    }
)
GUIDANCE_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}
)
FORMATS = {"xgrammar": XGRAMMAR_FORMATS, "guidance": GUIDANCE_FORMATS}
#: Formats whose grammar is only a shape: xgrammar's "date" admits 7967-11-31
#: (tests/test_schema_keywords.py found it). Kept in the engine schema, and checked after.
APPROXIMATE_FORMATS = frozenset({"date"})

#: Integers beyond this magnitude lose precision as doubles; xgrammar refuses bounds past int64.
XGRAMMAR_INT_LIMIT = 2**53
#: llguidance builds a regex for a number range; it fails for very large bounds (1e300).
GUIDANCE_NUMBER_LIMIT = 1e15


@dataclass(frozen=True)
class KeywordRule:
    """One keyword: its status per backend, why, and the conditions that change it."""

    keyword: str
    xgrammar: Status
    guidance: Status
    why: str = ""
    unless: str = field(default="", metadata={"doc": "when the status differs (the compiler's conditions)"})

    def status(self, backend: str) -> Status:
        return self.xgrammar if backend == "xgrammar" else self.guidance


_E, _V = ENFORCED, VALIDATED
_NOT_ENFORCED = "left out of the engine schema and checked after generation"

RULES: tuple[KeywordRule, ...] = (
    KeywordRule("type", _E, _E),
    KeywordRule("enum", _E, _E),
    KeywordRule("const", _E, _E),
    KeywordRule("properties", _E, _E, "a property whose schema is `false` is never generated"),
    KeywordRule(
        "required",
        _E,
        _E,
        "optional properties are generated as required and nullable; their nulls are removed after",
    ),
    KeywordRule("additionalProperties", _E, _E, "added as `false` where `properties` is declared and it is absent"),
    KeywordRule("items", _E, _E, "a draft-04 tuple `items: [...]` is read as `prefixItems`"),
    KeywordRule("prefixItems", _E, _E),
    KeywordRule("minItems", _E, _E),
    KeywordRule("maxItems", _E, _E),
    KeywordRule(
        "minLength",
        _E,
        _E,
        unless="xgrammar: validated next to a `pattern` or an enforced `format` (vLLM refuses the pair)",
    ),
    KeywordRule(
        "maxLength",
        _E,
        _E,
        unless="xgrammar: validated next to a `pattern` or an enforced `format` (vLLM refuses the pair)",
    ),
    KeywordRule(
        "pattern",
        _E,
        _E,
        "xgrammar matches the whole string (stricter than JSON Schema's search, never looser)",
        unless="validated when the backend's regex engine refuses it (look-around, back-references)",
    ),
    KeywordRule(
        "format",
        _E,
        _E,
        f"xgrammar: {', '.join(sorted(XGRAMMAR_FORMATS))}; guidance: {', '.join(sorted(GUIDANCE_FORMATS))}",
        unless="`date` is validated (the grammar enforces its shape, not the calendar); other formats are "
        "validated when jsonschema has a checker for them, else annotations",
    ),
    KeywordRule(
        "minimum",
        _E,
        _E,
        "a draft-04 boolean `exclusiveMinimum` is read as the number form",
        unless=f"xgrammar: integer bounds beyond ±2^53 are validated; guidance: number bounds beyond ±{GUIDANCE_NUMBER_LIMIT:g}",
    ),
    KeywordRule("maximum", _E, _E, unless="as `minimum`"),
    KeywordRule("exclusiveMinimum", _E, _E, unless="as `minimum`"),
    KeywordRule("exclusiveMaximum", _E, _E, unless="as `minimum`"),
    KeywordRule("multipleOf", _V, _E, "xgrammar ignores it (vLLM refuses it)"),
    KeywordRule(
        "minProperties",
        _V,
        _V,
        "optional properties are generated as null and removed after, so a count in the grammar would be wrong",
    ),
    KeywordRule(
        "maxProperties",
        _V,
        _V,
        "optional properties are generated as null and removed after, so a count in the grammar would be wrong",
    ),
    KeywordRule("anyOf", _E, _E),
    KeywordRule(
        "oneOf",
        _V,
        _V,
        "sent as `anyOf` (xgrammar cannot exclude overlaps; guidance refuses oneOf); one match checked after",
    ),
    KeywordRule(
        "allOf",
        _V,
        _E,
        "xgrammar accepts any JSON for a multi-branch allOf (vLLM refuses it): the branches are merged "
        "to guide generation and the allOf is checked after",
        unless="xgrammar: enforced with one branch",
    ),
    KeywordRule(
        "$ref",
        _E,
        _E,
        "local references (`#/$defs/...`, `#/definitions/...`); a root `$ref` is resolved first; "
        "references to other documents are bundled from the schema store (`schema_store`), never fetched",
    ),
    KeywordRule("$defs", _E, _E),
    KeywordRule("definitions", _E, _E),
    KeywordRule("uniqueItems", _V, _V, "guidance refuses it; vLLM refuses it with xgrammar"),
    KeywordRule("contains", _V, _V, "guidance refuses it; vLLM refuses it with xgrammar"),
    KeywordRule("minContains", _V, _V, "guidance refuses it; vLLM refuses it with xgrammar"),
    KeywordRule("maxContains", _V, _V, "guidance refuses it; vLLM refuses it with xgrammar"),
    KeywordRule("not", _V, _V, "xgrammar ignores it silently; guidance refuses it"),
    KeywordRule("if", _V, _V, "xgrammar ignores it silently; guidance refuses it"),
    KeywordRule("then", _V, _V, "xgrammar ignores it silently; guidance refuses it"),
    KeywordRule("else", _V, _V, "xgrammar ignores it silently; guidance refuses it"),
    KeywordRule(
        "dependentRequired",
        _V,
        _V,
        "xgrammar ignores it silently; guidance refuses it; draft-04 `dependencies` is read as this",
    ),
    KeywordRule("dependentSchemas", _V, _V, "xgrammar ignores it silently; guidance refuses it"),
    KeywordRule(
        "patternProperties",
        _V,
        _V,
        "xgrammar refuses keys it allows (full match), guidance refuses it",
    ),
    KeywordRule("propertyNames", _V, _V, "guidance refuses it; vLLM refuses it with xgrammar next to `properties`"),
    KeywordRule("unevaluatedProperties", _V, _V, "guidance refuses it"),
    KeywordRule("unevaluatedItems", _V, _V, "guidance refuses it"),
    KeywordRule("$dynamicRef", _V, _V, "not resolved for the grammar"),
    KeywordRule("$recursiveRef", _V, _V, "not resolved for the grammar"),
)
RULE_BY_KEYWORD = {rule.keyword: rule for rule in RULES}


def rules_markdown() -> str:
    """The README's keyword table: generated from :data:`RULES`, never written by hand."""
    lines = [
        "| keyword | xgrammar | guidance | notes |",
        "|---|---|---|---|",
    ]
    for rule in RULES:
        notes = "; ".join(part for part in (rule.why, rule.unless) if part)
        lines.append(f"| `{rule.keyword}` | {rule.xgrammar} | {rule.guidance} | {notes} |")
    return "\n".join(lines) + "\n"


README_START = "<!-- schema-rules:start (generated by `python -m docextract.schema.rules README.md`) -->"
README_END = "<!-- schema-rules:end -->"


def update_readme(text: str) -> str:
    """``text`` with the block between the README markers replaced by :func:`rules_markdown`."""
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError("the README has no schema-rules markers")
    return f"{head}{README_START}\n{rules_markdown()}{README_END}{tail}"


if __name__ == "__main__":
    import pathlib
    import sys

    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(update_readme(path.read_text(encoding="utf-8")), encoding="utf-8")
