from hypothesis import given, settings
from hypothesis import strategies as st

from askwise.policy.actions import (
    Action,
    ActionStreamParser,
    Interpretation,
    action_regex,
    format_action,
    parse_action,
)


def test_leading_tags():
    assert parse_action("#ANSWER Paris").action is Action.ANSWER
    assert parse_action("#CLARIFY Which year?").message == "Which year?"
    multi = parse_action("#MULTI_ANS\nIf you mean 2018: France\nIf you mean 2014: Germany")
    assert multi.action is Action.MULTI_ANSWER and multi.well_formed
    assert multi.interpretations == (Interpretation("2018", "France"), Interpretation("2014", "Germany"))


def test_tag_variants_small_models_produce():
    assert parse_action("  **#CLARIFY** Which one?").action is Action.CLARIFY
    assert parse_action("**#CLARIFY** Which one?").message == "Which one?"
    assert parse_action("#answer: Paris").message == "Paris"
    assert parse_action("ANSWER: Paris").action is Action.ANSWER
    assert parse_action("#MULTI_ANSWER\n- If you mean A: 1").action is Action.MULTI_ANSWER
    assert parse_action("# CLARIFY which?").action is Action.CLARIFY


def test_untagged_reply_falls_back_to_answer():
    parsed = parse_action("The capital is Paris.")
    assert parsed.action is Action.ANSWER and not parsed.tagged and not parsed.well_formed
    assert parsed.message == "The capital is Paris."
    # A tag that is only a prefix of a longer word is no tag.
    assert not parse_action("#ANSWERS are here").tagged


def test_multi_answer_with_bad_lines_keeps_what_parsed():
    parsed = parse_action("#MULTI_ANS\n1. If you mean the film: 1997\nsomething else")
    assert parsed.action is Action.MULTI_ANSWER and not parsed.well_formed
    assert parsed.interpretations == (Interpretation("the film", "1997"),)
    assert parsed.message == "1. If you mean the film: 1997\nsomething else"


def test_empty_and_odd_inputs():
    assert parse_action("").message == ""
    assert not parse_action("#CLARIFY").well_formed
    assert parse_action(None).action is Action.ANSWER


def test_regex_names_every_allowed_tag_and_only_those():
    assert "#CLARIFY" in action_regex()
    final_only = action_regex((Action.ANSWER, Action.MULTI_ANSWER))
    assert "#CLARIFY" not in final_only and "#MULTI_ANS" in final_only


def test_regex_matches_formatted_actions():
    import re
    pattern = re.compile(action_regex())
    for text in [format_action(Action.ANSWER, "Paris"), format_action(Action.CLARIFY, "Which?"),
                 format_action(Action.MULTI_ANSWER, interpretations=[Interpretation("a", "1"),
                                                                     Interpretation("b", "2")])]:
        assert pattern.fullmatch(text), text


LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
one_line = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS),
                   min_size=1, max_size=40)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_parser_never_raises(text):
    parsed = parse_action(text)
    assert isinstance(parsed.action, Action) and isinstance(parsed.message, str)


@settings(max_examples=200)
@given(st.sampled_from([Action.ANSWER, Action.CLARIFY]), one_line)
def test_format_then_parse_round_trips(action, message):
    message = message.strip()
    parsed = parse_action(format_action(action, message))
    assert parsed.action is action
    assert parsed.message == message


readings = st.lists(st.tuples(one_line.filter(lambda s: ":" not in s and "," not in s and s.strip()),
                              one_line.filter(lambda s: s.strip())), min_size=1, max_size=5)


@settings(max_examples=200)
@given(readings)
def test_multi_answer_round_trips(pairs):
    items = [Interpretation(i.strip(), a.strip()) for i, a in pairs]
    parsed = parse_action(format_action(Action.MULTI_ANSWER, interpretations=items))
    assert parsed.action is Action.MULTI_ANSWER
    assert list(parsed.interpretations) == items


@settings(max_examples=300)
@given(st.text(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_streaming_equals_parsing_for_any_chunking(text, cuts):
    cuts = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    parser = ActionStreamParser()
    shown = "".join(parser.feed(piece) for piece in pieces)
    tail, parsed = parser.finish()
    expected = parse_action(text)
    assert shown + tail == expected.message
    assert parsed == expected


TAG_LIKE = ["", "#ANSWER", "#ANSWER ", "#ANSWER*", "**#CLARIFY**", "#CLARIFY:", "#MULTI_ANS\n",
            "#MULTI_ANSWER ", "ANSWER:", "#answer ", " > #CLARIFICATION", "#ANS", "#CLARIFYING "]


@settings(max_examples=400)
@given(st.sampled_from(TAG_LIKE), st.text(alphabet=" *_:\nPa,#ris", max_size=30),
       st.lists(st.integers(min_value=0, max_value=60), max_size=10))
def test_streaming_decides_early_only_what_the_whole_reply_decides(tag, text, cuts):
    text = tag + text
    cuts = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    expected = parse_action(text)
    parser, shown = ActionStreamParser(), ""
    for piece in pieces:
        shown += parser.feed(piece)
        if parser.action is not None:
            assert parser.action is expected.action, (text, pieces)
    tail, parsed = parser.finish()
    assert shown + tail == expected.message and parsed == expected


def test_a_whole_tag_and_one_character_announce_the_action():
    parser = ActionStreamParser()
    assert parser.feed("#CLARIFY") == "" and parser.action is None
    assert parser.feed(" ") == "" and parser.action is None
    assert parser.feed("W") == "W" and parser.action is Action.CLARIFY


@given(st.sampled_from(["#CLARIFY Which year do you mean?", "#ANSWER Paris is the capital",
                        "Paris, obviously, is the capital of France"]))
def test_stream_announces_the_action_before_the_end(text):
    parser = ActionStreamParser()
    for ch in text:
        parser.feed(ch)
    assert parser.action is parse_action(text).action


def test_prefixes_parse_as_their_action():
    from askwise.policy.actions import ACTION_PREFIXES, action_prefixes

    for action, prefix in ACTION_PREFIXES.items():
        assert parse_action(prefix + "x: y").action is action
    assert action_prefixes((Action.ANSWER,)) == ("#ANSWER ",)


def test_a_second_tag_is_where_a_reply_stops():
    from askwise.policy.actions import ACTION_STOP

    looping = "#MULTI_ANS\nIf you mean A: 1\n#MULTI_ANS\nIf you mean A: 1"
    cut = min(looping.find(s, 1) for s in ACTION_STOP)
    assert parse_action(looping[:cut]).well_formed
