"""Judges: the papers' prompts, tolerant parsing of messy outputs, and the judges' bookkeeping with a scripted backend
(order randomization and its undoing, ties, unparsable outputs, rubric averaging). No model is loaded."""

import hashlib
import logging
import math

import pytest

import personalign.evaluation as evaluation
from personalign.evaluation import judges
from personalign.evaluation.judges import (
    PAIRWISE_JUDGE_PROMPT,
    PERSONA_TAILORING_PROMPT,
    PROMETHEUS_SYSTEM_PROMPT,
    LLMJudge,
    PairwiseJudge,
    PersonaTailoringJudge,
    RubricJudge,
    fill_template,
    format_rubric,
    pairwise_judge_messages,
    parse_pairwise_verdict,
    parse_score,
    persona_tailoring_messages,
)
from personalign.inference.generation import GenerationBackend
from personalign.personas.persona import PairItem, Persona, UGCItem


class ScriptedBackend(GenerationBackend):
    """Answers each prompt with `script(user_message_text)`, and records the calls."""

    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.calls = []

    def _generate(self, prompts, max_new_tokens, temperature, top_p, seed):
        self.calls.append({"prompts": prompts, "max_new_tokens": max_new_tokens, "temperature": temperature})
        return [self.script(messages[-1]["content"]) for messages in prompts]


# ------------------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    "text, expected",
    [
        ("4", 4),
        ("  **4**.\n", 4),
        ("Score: 4/5", 4),
        ("**Score:** 2", 2),
        ("score = 5", 5),
        ("The score is 3.", 3),
        ("Feedback: The response ignores the user's hobby. [RESULT] 2", 2),
        ("Feedback: ... [RESULT]: **5**", 5),
        ("I'd rate it 4 out of 5.", 4),
        ("I would give it a 3.", 3),
        ("[[5]]", 5),
        ("Score 1: off-topic\nScore 2: generic\nScore 4: tailored\n[RESULT] 4", 4),  # echoed rubric lines ignored
        ("1. Style: good\n2. Content: relevant\n3. Concise: yes\nScore: 5", 5),  # numbering ignored
        ("On a scale from 1-5, this deserves 3", 3),  # the range is not a score
        ("Rating of 1 to 5 requested. Final rating: 2", 2),
        ("Score: 3. Actually, on reflection, score: 4", 4),  # the last marker wins
        ("It follows criterion 1 and 2 well, so 4", 4),  # no marker: the last standalone integer
        ("Score: four", 4),
        ("Score: 4.0", 4),
        ("SCORE: 1", 1),
        ("4.5", None),  # no half points
        ("Score: 7", None),  # out of range
        ("8/10", None),  # another scale
        ("3/10", None),
        ("I cannot evaluate this response.", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_parse_score_other_scale():
    assert parse_score("Score: 8/10", low=1, high=10) == 8
    assert parse_score("Score: 8/10") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"choice": "Response A"}', "A"),
        ('```json\n{"choice": "Response B"}\n```', "B"),
        ("{'choice': 'Tie'}", "tie"),
        ('{"choice": "tie"}', "tie"),
        ("{“choice”: “Response B”}", "B"),  # curly quotes
        ('{"choice": "[Response A]"}', "A"),
        ('{"choice": "B"}', "B"),
        ('Thinking... {"choice": "Response A"}. Wait, no: {"choice": "Response B"}', "B"),  # the last one
        ('{"choice": "[Response A/Response B/Tie]"}', None),  # the placeholder echoed back
        ("[[A]]", "A"),
        ("My final verdict is [[b]].", "B"),
        ("[[C]]", "tie"),
        ("**B**", "B"),
        ("**Response A** is short; **Response A** wins.", "A"),
        ("**Response A** is short. **Response B** is long.", None),  # disagreeing bold mentions
        ("Tie", "tie"),
        ("tie.", "tie"),
        ("It's a tie.", "tie"),
        ("Both are fine.\nTie", "tie"),
        ("Response A is better than Response B.", "A"),
        ("response b is clearly better", "B"),
        ("I prefer Response B over response A.", "B"),
        ("Choice: B", "B"),
        ("Final verdict: **Response A**", "A"),
        ("The answer is a bit long, but the winner is B", "B"),  # "a" the article is no verdict
        ("A", "A"),
        ("b", "B"),
        ("Response A", "A"),
        ("Only Response B mentions the user's hobby.", "B"),  # single mention
        ("Response A and Response B are both okay.", None),
        ("I cannot decide.", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_pairwise_verdict(text, expected):
    assert parse_pairwise_verdict(text) == expected


# ------------------------------------------------------------------------------------------------------ prompts
def test_fill_template_leaves_other_braces_alone():
    assert fill_template('{a} + {"x": 1} {b}', a="{b}", b="B") == '{b} + {"x": 1} B'
    with pytest.raises(KeyError, match="b"):
        fill_template("{a} {b}", a="A")


def test_persona_tailoring_prompt_is_the_seeds():
    messages = persona_tailoring_messages("RESP", "MSG", "PROFILE", "PERSONALITIES")
    assert [m["role"] for m in messages] == ["user"]
    text = messages[0]["content"]
    assert "Here is the user's profile: PROFILE\n" in text
    assert "Here is the user's personalities: PERSONALITIES\n" in text
    assert "Here is the user's message: MSG\n" in text
    assert "Here is the model's response: RESP\n" in text
    assert "3. Is response human-like, engaging, and concise?" in text
    assert text.endswith("Only output the score from 1-5.")
    assert "{profile}" not in text and "{response}" not in text
    assert PERSONA_TAILORING_PROMPT.startswith("You will be given a user's profile, personalities, and a message")


def test_pairwise_prompt_is_the_seeds_and_renders_personas():
    persona = Persona(
        ugc=[UGCItem("a post", "my comment")], pairs=[PairItem("q", "good", "bad")], demographics="Likes cats."
    )
    text = pairwise_judge_messages(persona, "QUERY", "RESP-A", "RESP-B")[0]["content"]
    assert text.startswith("The given user behavior history reflects the user's preferences.")
    assert "allowing for a tie between the two responses?" in text
    assert "### User Behavior History\n**This person has commented on some posts:**" in text
    assert "my comment" in text and "Likes cats." in text
    assert text.index("QUERY") < text.index("RESP-A") < text.index("RESP-B")
    assert text.endswith('{"choice": "[Response A/Response B/Tie]"}')
    assert PAIRWISE_JUDGE_PROMPT.count("{") == 5  # four fields and the JSON answer format


# The SHA-256 of every paper prompt: a change of one byte (whitespace included) fails here.
PAPER_PROMPT_SHA256 = {
    "PERSONA_TAILORING_PROMPT": "c2aa2692c514f13cac93dfdfd9c7a9326370f6211110e1715bd84b3b95340c1f",
    "PAIRWISE_JUDGE_PROMPT": "8306e8db3a577b48569692d28bd71bf6bad80ab5708905c50eb4b793015c8444",
    "PROMETHEUS_SYSTEM_PROMPT": "526b5b77a2d7eeaf33b21720197b6be536710d867d22cb468b0fb8f6022b62ab",
    "PROMETHEUS_ABSOLUTE_PROMPT": "fdc61c777c8d5b9d1b281ffa08eec03787d17469074cea1410afe4f153f5d469",
    "PROMETHEUS_ABSOLUTE_PROMPT_NO_REFERENCE": "e4a5fb23843318fc0a3406d86206644aad7476f71f1b1ca761f60adceebea56a",
}


@pytest.mark.parametrize("name", sorted(PAPER_PROMPT_SHA256))
def test_paper_prompts_are_byte_identical(name):
    assert hashlib.sha256(getattr(judges.prompts, name).encode()).hexdigest() == PAPER_PROMPT_SHA256[name]
    assert getattr(judges, name) is getattr(judges.prompts, name)  # one definition, re-exported by the package


def test_format_rubric():
    item = {"criteria": "Is it witty?", "score_descriptions": {str(k): f"level {k}" for k in range(1, 6)}}
    assert format_rubric(item) == "[Is it witty?]\n" + "\n".join(f"Score {k}: level {k}" for k in range(1, 6))
    assert format_rubric({"criteria": "c", "score_descriptions": {k: "d" for k in range(1, 6)}}).count("Score") == 5
    with pytest.raises(ValueError, match="score 5"):
        format_rubric({"criteria": "c", "score_descriptions": {str(k): "d" for k in range(1, 5)}})
    with pytest.raises(ValueError, match="criteria"):
        format_rubric({"score_descriptions": {}})


# ------------------------------------------------------------------------------------------------------- judges
def test_persona_tailoring_judge_scores_and_counts_unparsable():
    def script(text):
        response = text.split("Here is the model's response: ")[1].split("\n")[0]
        return {"r-good": "Score: 5", "r-ok": "3", "r-weird": "I refuse to grade this."}[response]

    backend = ScriptedBackend(script)
    judge = PersonaTailoringJudge(backend)
    report = judge.judge(
        ["r-good", "r-ok", "r-weird", "r-good"], messages=["m"] * 4, profiles="a home brewer", personalities=["p"] * 4
    )
    assert report.scores == [5.0, 3.0, None, 5.0]
    assert report.mean == pytest.approx(13 / 3)
    assert (report.num_examples, report.num_judgments, report.num_unparsable, report.num_unscored) == (4, 4, 1, 1)
    assert report.distribution == {3: 1, 5: 2}
    summary = report.to_dict()
    assert summary["judge"] == "persona_tailoring" and summary["backend"] == "scripted"
    assert summary["num_unparsable"] == 1 and "outputs" not in summary
    assert report.to_dict(include_outputs=True)["outputs"][2] == ["I refuse to grade this."]
    assert len(backend.calls) == 1 and backend.calls[0]["temperature"] == 0.0  # one batched call, greedy
    with pytest.raises(ValueError, match="differ in length"):
        judge.judge(["r"], messages=["m", "m"], profiles="p", personalities="q")


def _model_and_baseline(n):
    return [f"GOOD answer {i}" for i in range(n)], [f"plain answer {i}" for i in range(n)]


def test_pairwise_order_is_seeded_and_undone():
    n = 40
    responses, baselines = _model_and_baseline(n)

    def prefers_good(text):  # a judge without position bias that always prefers the model's response
        first = text.split("### Response A\n")[1].split("\n")[0]
        return '{"choice": "Response A"}' if first.startswith("GOOD") else 'Sure. {"choice": "Response B"}'

    report = PairwiseJudge(ScriptedBackend(prefers_good), seed=3).judge(["q"] * n, responses, baselines, "history")
    assert report.outcomes == ["win"] * n and report.win_rate == 1.0
    assert 5 < sum(report.swapped) < n - 5  # both orders occur
    assert report.verdicts == ["B" if s else "A" for s in report.swapped]
    # The same seed shows the same order; another seed another one; no randomization keeps the model first.
    again = PairwiseJudge(ScriptedBackend(prefers_good), seed=3).judge(["q"] * n, responses, baselines, "h")
    other = PairwiseJudge(ScriptedBackend(prefers_good), seed=4).judge(["q"] * n, responses, baselines, "h")
    assert again.swapped == report.swapped and other.swapped != report.swapped
    fixed = PairwiseJudge(ScriptedBackend(prefers_good), randomize_order=False).judge(
        ["q"] * n, responses, baselines, "h"
    )
    assert fixed.swapped == [False] * n and fixed.outcomes == ["win"] * n


def test_pairwise_position_bias_maps_to_the_shown_order():
    n = 30
    responses, baselines = _model_and_baseline(n)
    report = PairwiseJudge(ScriptedBackend(lambda text: "[[A]]"), seed=0).judge(["q"] * n, responses, baselines, "h")
    assert report.outcomes == ["lose" if s else "win" for s in report.swapped]
    assert report.first_position_rate == 1.0
    assert report.win_rate == pytest.approx(report.wins / n) and report.wins == n - sum(report.swapped)


def test_pairwise_ties_and_unparsable():
    queries = ["win", "win", "lose", "tie", "tie", "junk"]

    def script(text):
        query = text.split("### Query\n")[1].split("\n")[0]
        first = text.split("### Response A\n")[1].split("\n")[0]
        model_first = first.startswith("GOOD")
        if query == "tie":
            return "It's a tie."
        if query == "junk":
            return "Both have merits."
        model_wins = query == "win"
        return "[[A]]" if model_wins == model_first else "[[B]]"

    responses, baselines = _model_and_baseline(len(queries))
    report = PairwiseJudge(ScriptedBackend(script), seed=1).judge(queries, responses, baselines, ["h"] * 6)
    assert report.outcomes == ["win", "win", "lose", "tie", "tie", None]
    assert (report.wins, report.ties, report.losses, report.num_unparsable) == (2, 2, 1, 1)
    assert report.win_rate == pytest.approx(2 / 3)  # Win / (Win + Lose): ties and failures left out
    assert report.win_rate_with_ties == pytest.approx(3 / 5)
    summary = report.to_dict()
    assert summary["wins"] == 2 and summary["ties"] == 2 and summary["losses"] == 1 and summary["num_unparsable"] == 1
    only_ties = PairwiseJudge(ScriptedBackend(lambda text: "Tie")).judge(["q"], ["a"], ["b"], "h")
    assert only_ties.win_rate is None and only_ties.ties == 1


def _rubric(criteria):
    return {"criteria": criteria, "score_descriptions": {str(k): f"{criteria} level {k}" for k in range(1, 6)}}


def test_rubric_judge_one_call_per_item_then_average():
    def script(text):
        criteria = text.split("###Score Rubrics:\n[")[1].split("]")[0]
        return {"style": "Feedback: fine. [RESULT] 4", "depth": "Feedback: thin. [RESULT] 2", "tone": "no score here"}[
            criteria
        ]

    backend = ScriptedBackend(script)
    judge = RubricJudge(backend)
    report = judge.judge(
        ["instr 1", "instr 2", "instr 3"],
        ["resp 1", "resp 2", "resp 3"],
        [[_rubric("style"), _rubric("depth"), _rubric("tone")], _rubric("style"), [_rubric("tone")]],
        reference_answers=["REFERENCE ONE", None, None],
    )
    assert report.item_scores == [[4, 2, None], [4], [None]]
    assert report.scores == [3.0, 4.0, None]  # the unparsable item is left out of the first mean
    assert report.mean == pytest.approx(3.5)  # over the scored responses
    assert (report.num_judgments, report.num_unparsable, report.num_unscored) == (5, 2, 1)
    prompts = backend.calls[0]["prompts"]
    assert len(prompts) == 5 and backend.calls[0]["max_new_tokens"] == 512
    assert prompts[0][0] == {"role": "system", "content": PROMETHEUS_SYSTEM_PROMPT}
    assert "###Reference Answer (Score 5):\nREFERENCE ONE" in prompts[0][1]["content"]
    assert "Reference Answer" not in prompts[3][1]["content"]  # no reference: the prompt without it
    assert "###The instruction to evaluate:\ninstr 2" in prompts[3][1]["content"]
    assert prompts[0][1]["content"].endswith("###Feedback: ")


def test_rubric_judge_rows_in_multifaceted_bench_schema():
    rows = [
        {"source": "s", "system": "sys", "prompt": "p1", "reference_answer": "ref", "rubric": [_rubric("style")]},
        {"source": "s", "system": "sys", "prompt": "p2", "reference_answer": "ref", "rubric": [_rubric("style")]},
    ]
    scores = iter(["[RESULT] 5", "Score: 1"])
    report = RubricJudge(ScriptedBackend(lambda text: next(scores)), system_prompt=None).judge_rows(rows, ["a", "b"])
    assert report.scores == [5.0, 1.0] and report.mean == 3.0 and not math.isnan(report.mean)
    with pytest.raises(ValueError, match="rubric"):
        RubricJudge(ScriptedBackend(str)).judge_rows([{"prompt": "p"}], ["a"])


def test_backend_returning_too_few_outputs_is_an_error():
    class Short(ScriptedBackend):
        def generate(self, prompts, **kwargs):
            return []

    with pytest.raises(RuntimeError, match="0 outputs for 1 prompts"):
        PersonaTailoringJudge(Short(str)).judge(["r"], ["m"], "p", "q")


def test_judges_share_the_public_base_and_warn_with_their_name(caplog):
    for judge in (PersonaTailoringJudge, PairwiseJudge, RubricJudge):
        assert issubclass(judge, LLMJudge)
    with caplog.at_level(logging.WARNING):
        PersonaTailoringJudge(ScriptedBackend(lambda text: "no idea")).judge(["r", "s"], ["m", "m"], "p", "q")
    assert "persona_tailoring: 2 of 2 judge outputs could not be parsed" in caplog.text


def test_judges_name_their_parser_and_a_caller_may_report_unparsable_outputs_itself(caplog):
    """`personalign judge` reports unparsable outputs in the protocol's words and asks them again by the judge's own
    parser (`--retry-unparsable`)."""
    assert PairwiseJudge.parse_output("[[B]]") == "B" and PairwiseJudge.parse_output("Both are fine.") is None
    assert RubricJudge.parse_output("[RESULT] 4") == 4 and PersonaTailoringJudge.parse_output("Score: 7") is None
    with pytest.raises(NotImplementedError):
        LLMJudge.parse_output("4")
    with caplog.at_level(logging.WARNING):
        report = RubricJudge(ScriptedBackend(lambda text: "hmm"), report_unparsable=False).judge(
            ["i"], ["r"], [{"criteria": "c", "score_descriptions": {str(k): "d" for k in range(1, 6)}}]
        )
    assert report.num_unparsable == 1 and caplog.text == ""


def test_lazy_exports():
    assert evaluation.PairwiseJudge is PairwiseJudge and evaluation.parse_score is parse_score
    assert {"PairwiseJudge", "RubricJudge", "PersonaTailoringJudge", "parse_pairwise_verdict"} <= set(dir(evaluation))
