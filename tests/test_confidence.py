"""Per-field confidence: token -> JSON path mapping by exact character offsets, on hand-made token
sequences whose scores are worked out by hand."""

from __future__ import annotations

import math

import pytest

from docextract.confidence import field_confidence, json_path, value_spans


def _score(text: str, tokens: list[tuple[str, float]], **kwargs):
    return field_confidence(text, [t for t, _ in tokens], [lp for _, lp in tokens], **kwargs)


def test_paths_look_like_validation_error_paths():
    assert json_path(["line_items", 2, "amount"]) == "line_items[2].amount"
    assert json_path([]) == "" and json_path([0]) == "[0]"
    assert json_path(["a b", "c"]) == '["a b"].c'


def test_value_spans_cover_values_not_keys_quotes_or_commas():
    text = '{"a":"xy","b":[1,-2.5e3],"c":{"d":true,"e":null},"f":""}'
    spans = value_spans(text)
    assert {path: text[s:e] for path, (s, e) in spans.items()} == {
        "a": "xy",
        "b[0]": "1",
        "b[1]": "-2.5e3",
        "c.d": "true",
        "c.e": "null",
        "f": '"',  # an empty string: the closing quote decided it
    }
    assert value_spans('{"a":') is None  # cut by max_tokens
    assert value_spans('{"a":1} x') is None


def test_a_value_is_the_product_of_its_tokens_probabilities():
    # {"total":12.5} written as '{"total":' '1' '2.' '5' '}'
    tokens = [('{"total":', 0.0), ("1", math.log(0.5)), ("2.", math.log(0.8)), ("5", math.log(0.9)), ("}", 0.0)]
    conf = _score('{"total":12.5}', tokens)
    assert conf.scores == {"total": pytest.approx(0.5 * 0.8 * 0.9)}
    assert conf.forced == [] and conf.lowest == pytest.approx(0.36)


def test_escapes_and_multibyte_characters_map_by_offsets():
    # "caf\u00e9 \"x\"": a multi-byte character arrives with the token that completes it,
    # an escape sequence is part of the value's span.
    text = '{"n":"café \\"x\\""}'
    tokens = [('{"n":"', 0.0), ("caf", math.log(0.5)), ("", math.log(0.9)), ("é", math.log(0.8)),
              (' \\"x', math.log(0.25)), ('\\""', math.log(0.5)), ("}", 0.0)]  # fmt: skip
    conf = _score(text, tokens)
    # The empty-text token wrote no character of the value: it does not count.
    assert conf.scores == {"n": pytest.approx(0.5 * 0.8 * 0.25 * 0.5)}


def test_a_token_spanning_two_values_counts_for_both_and_forced_values_are_reported():
    text = '{"v":[5,6],"k":"a"}'
    tokens = [('{"v":[', 0.0), ("5,6", math.log(0.5)), ('],"k":"', 0.0), ("a", 0.0), ('"}', 0.0)]
    conf = _score(text, tokens)
    assert conf.scores == {"v[0]": pytest.approx(0.5), "v[1]": pytest.approx(0.5), "k": 1.0}
    assert conf.forced == ["k"]


def test_nested_arrays_and_only_paths_kept_after_mapping_back():
    text = '{"items":[{"amount":1},{"amount":2}],"note":null}'
    tokens = [('{"items":[{"amount":', 0.0), ("1", math.log(0.5)), ('},{"amount":', 0.0), ("2", math.log(0.25)),
              ('}],"note":', 0.0), ("null", math.log(0.5)), ("}", 0.0)]  # fmt: skip
    conf = _score(text, tokens, keep={"items": [{"amount": 1}, {"amount": 2}]})  # "note" was removed
    assert conf.scores == {"items[0].amount": pytest.approx(0.5), "items[1].amount": pytest.approx(0.25)}


def test_nothing_to_score_when_texts_do_not_add_up_or_logprobs_are_missing():
    assert _score('{"a":1}', [('{"a":', 0.0), ("2}", 0.0)]) is None
    conf = field_confidence('{"a":1}', ['{"a":', "1", "}"], [0.0, None, 0.0])
    assert conf is not None and conf.scores == {}


def test_values_the_schema_fixes_are_forced_whatever_their_tokens_say():
    # "receipt" is the only value the schema allows, but the grammar admits every segmentation
    # of it, so its tokens are not certain: the schema, not the tokens, says it is forced.
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "receipt"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        },
        "$defs": {"item": {"type": "object", "properties": {"unit": {"enum": ["kg"]}, "n": {"type": "integer"}}}},
    }
    text = '{"kind":"receipt","items":[{"unit":"kg","n":3}]}'
    tokens = [('{"kind":"', 0.0), ("rec", math.log(0.5)), ("eipt", math.log(0.5)), ('","items":[{"unit":"', 0.0),
              ("kg", math.log(0.9)), ('","n":', 0.0), ("3", math.log(0.2)), ("}]}", 0.0)]  # fmt: skip
    conf = _score(text, tokens, schema=schema)
    assert conf.scores == {"kind": 1.0, "items[0].unit": 1.0, "items[0].n": pytest.approx(0.2)}
    assert sorted(conf.forced) == ["items[0].unit", "kind"]
