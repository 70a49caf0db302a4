"""`askwise serve`: run the gateway with uvicorn."""

from __future__ import annotations

import argparse
import logging

from .settings import add_arguments, from_arguments


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "serve", help="serve the policy over HTTP (embedded model by default)",
        description="Serve the clarification policy. With no arguments: the embedded default "
        "model on 127.0.0.1:8000. Route to vLLM with --backend openai --backend-url URL.")
    add_arguments(parser)
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import build_app

    settings = from_arguments(args)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=10)
    return 0
