"""Request and response schemas of the gateway (pydantic v2).

Two front doors onto one service:
- `/v1/chat` (native): strict schema, unknown fields rejected, structured response;
- `/v1/chat/completions` (OpenAI-compatible): unknown OpenAI fields tolerated so official
  clients work unchanged; askwise fields (`costs`, `preset`, `documents`) travel as extra
  body fields and the parsed action comes back in the extra `askwise` response field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from askwise.policy.actions import Action
from askwise.policy.costs import CostOverrides

Temperature = Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
MaxTokens = Annotated[int, Field(ge=1)]
# Backends take 64-bit seeds; a bigger integer would reach them and fail there (a 5xx).
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Action rates an application wants instead of costs ("multi" is short for multi_answer).
Target = dict[Literal["answer", "clarify", "multi_answer", "multi"], Annotated[float, Field(ge=0.0, le=1.0)]]
TARGET_DESCRIPTION = ("Action rates wanted instead of costs, e.g. {\"clarify\": 0.2, \"multi\": 0}: "
                      "the server's calibration (--calibration) turns them into alpha and beta.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentIn(_Strict):
    text: StrictStr = Field(description="The document's content.")
    title: StrictStr = Field("", description="Optional title, shown to the model before the text.")


class MessageIn(_Strict):
    role: Literal["system", "user", "assistant"]
    content: StrictStr
    action: Action | None = Field(None, description="For assistant turns: the action it was "
                                  "(returned by this API); lets the policy see its own format.")


class ChatRequest(_Strict):
    messages: list[MessageIn] = Field(min_length=1, description="The conversation so far, "
                                      "ending with the user's turn.")
    documents: list[DocumentIn | StrictStr] = Field(default_factory=list, description="Grounding "
                                                    "documents the answer must come from.")
    preset: StrictStr | None = Field(None, description="Named cost preset (GET /v1/presets).")
    costs: CostOverrides | None = Field(None, description="alpha and/or beta; override the preset.")
    target: Target | None = Field(None, description=TARGET_DESCRIPTION)
    model: StrictStr | None = Field(None, description="Model name (GET /v1/models); default if omitted.")
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_tokens: MaxTokens | None = None
    seed: Seed | None = None
    stream: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AppliedCosts(BaseModel):
    alpha: float
    beta: float
    preset: str = Field(description="The preset the costs started from (numbers may override it).")
    target: dict[str, float] | None = Field(None, description="The target rates the costs were "
                                            "solved for, when the request or its preset gave one.")


class InterpretationOut(BaseModel):
    interpretation: str
    answer: str


class ActionProbabilities(BaseModel):
    """The policy's probability of each action tag where its reply picked one, renormalised
    over the three tags: the model's own preference at these costs, not a calibrated chance
    of being right. An action the conversation does not allow (a question past the limit)
    gets 0."""

    answer: float
    multi_answer: float
    clarify: float


class ExpectedOut(BaseModel):
    """What an action is expected to give on this request, by the value head: F1 of the final
    answer, its words, and questions asked. Its value at the request's costs is f1 -
    alpha * questions - beta * words; the decision takes the highest."""

    f1: float
    words: float
    questions: float


ExpectedByAction = dict[Literal["answer", "multi_answer", "clarify"], ExpectedOut]


class PolicyResult(BaseModel):
    """What the policy did with this turn; embedded in both response shapes."""

    action: Action
    message: str = Field(description="What the user sees: the answer, the answers, or the question.")
    interpretations: list[InterpretationOut] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list, description="A clarifying question's "
                               "options, in its order, when it offers 2 to 4 distinct ones: an "
                               "app can show them as buttons. A reply naming one by its words or "
                               "its position (\"the second one\") resolves to it.")
    costs: AppliedCosts
    words: int = Field(description="Words in the message; the final answer pays beta for each.")
    cost_incurred: float = Field(description="alpha for a question; beta * words for an answer.")
    well_formed: bool = Field(description="False when the model's reply needed a parser fallback.")
    prompt_format: str
    action_probabilities: ActionProbabilities | None = Field(
        default=None, description="The policy's probability of each action tag where its reply "
        "starts (its own preference, also when the value decision chose); null when the backend "
        "returned no token probabilities.")
    decision: Literal["value", "policy"] = Field(
        "policy", description="What chose the action: the expected-value head (value) or the "
        "policy's own tag (policy; also every turn after a question).")
    expected: ExpectedByAction | None = Field(
        default=None, description="With the value decision: each allowed action's expected F1, "
        "words and questions, from which the action was chosen.")


class ChatResponse(PolicyResult):
    id: str
    object: Literal["askwise.chat"] = "askwise.chat"
    created: int
    model: str
    finish_reason: str
    usage: Usage


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error, in the OpenAI shape."""

    error: ErrorDetail


# ---------------------------------------------------------------------- OpenAI-compatible


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: StrictStr


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class OpenAIChatRequest(BaseModel):
    # OpenAI clients send fields we do not use (user, logprobs=false, ...): accept them.
    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    messages: list[OpenAIMessage] = Field(min_length=1)
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    n: Annotated[int, Field(ge=1)] = 1
    seed: Seed | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: StrictStr | list[StrictStr] | None = None
    tools: list | None = None
    response_format: dict | None = None
    # askwise extras (extra_body in the openai client)
    preset: StrictStr | None = None
    costs: CostOverrides | None = None
    target: Target | None = Field(None, description=TARGET_DESCRIPTION)
    documents: list[DocumentIn | StrictStr] = Field(default_factory=list)


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    """OpenAI's chat.completion, plus what the policy did in `askwise`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage
    askwise: PolicyResult
