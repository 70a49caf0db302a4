"""Where the gateway's value decision comes from (policy/value.py).

- Embedded engine: the head ships in the adapter folder and runs inside the engine, on the
  state its prefill computes anyway (`ValueHead.decision` -> `SamplingParams.decision`).
- OpenAI backend (vLLM): the head is the score layer of a sequence-classification export of
  the same policy (`askwise export --value`), served by vLLM's pooling runner at
  `--value-url`; the gateway asks its `/classify` for the six expectations on the prompt
  without its costs, then has the generation server write the chosen action.

`--decision policy` turns it off: the policy's own tag decides, as the paper's policy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from askwise.policy.actions import Action
from askwise.policy.engines.base import ChatMessages
from askwise.policy.value import Expected, ValueHead, expected_from_outputs, has_value_head, state_messages

from .settings import Settings


@dataclass
class ValueSource:
    """The head in process (`head`), or a vLLM pooling server that applies it (`client`)."""

    head: ValueHead | None = None
    client: object = None  # OpenAIEngine pointed at the pooling server
    model: str | None = None

    async def expected(self, messages: ChatMessages, allowed: tuple[Action, ...]) -> dict[Action, Expected]:
        """The six expectations from the pooling server, for the prompt without its costs."""
        outputs = await self.client.classify(state_messages(messages), self.model)
        return expected_from_outputs(outputs, allowed)

    async def check_ready(self) -> None:
        if self.client is not None:
            await self.client.check_ready()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class DecisionConfigError(ValueError):
    pass


def value_source(settings: Settings, adapter: Path | None) -> ValueSource | None:
    """The value source the settings ask for; None where the policy's tag decides."""
    if settings.decision == "policy":
        return None
    if settings.backend == "openai":
        if settings.value_url:
            from askwise.policy.engines.openai_engine import OpenAIEngine

            client = OpenAIEngine(settings.value_url, api_key=settings.backend_api_key,
                                  default_model=settings.value_model,
                                  connect_timeout_s=settings.backend_connect_timeout_s,
                                  timeout_s=settings.backend_timeout_s, max_connections=settings.max_in_flight)
            return ValueSource(client=client, model=settings.value_model)
        if settings.decision == "value":
            raise DecisionConfigError("--decision value over --backend openai needs --value-url: a vLLM "
                                      "pooling server of the policy's value export (askwise export --value)")
        return None
    if has_value_head(adapter):
        return ValueSource(head=ValueHead.load(adapter))
    if settings.decision == "value":
        raise DecisionConfigError(f"--decision value needs an adapter with a value head; {adapter} has none "
                                  "(askwise train --value-items fits one)")
    return None

