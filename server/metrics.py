"""Prometheus metrics of the gateway, on a registry of its own per app (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "askwise_requests", "Chat requests by endpoint, preset, action and HTTP status.",
            ["endpoint", "preset", "action", "status"], registry=self.registry)
        self.latency = Histogram(
            "askwise_request_latency_seconds", "Time from request to the last byte of the reply.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram(
            "askwise_time_to_first_token_seconds", "Time to the first user-visible text (streams).",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter(
            "askwise_tokens", "Tokens processed by the policy model.", ["kind"], registry=self.registry)
        self.in_flight = Gauge(
            "askwise_in_flight_requests", "Chat requests being served now.", registry=self.registry)
        self.backend_errors = Counter(
            "askwise_backend_errors", "Engine or backend failures by kind.", ["kind"],
            registry=self.registry)
        self.malformed = Counter(
            "askwise_malformed_replies", "Model replies that needed a parser fallback.",
            registry=self.registry)
