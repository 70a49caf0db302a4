"""`askwise serve`: run the gateway with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

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
    try:
        app = build_app(settings)
    except ValueError as exc:  # a presets file or calibration that cannot be used: say why
        print(f"askwise serve: {exc}", file=sys.stderr)
        return 2

    class DrainingServer(uvicorn.Server):
        """On SIGTERM/SIGINT, close admission before uvicorn stops accepting connections, so
        /readyz says "draining" and a request that slips in on a kept-alive connection gets
        503 instead of a cut connection. uvicorn then waits up to `drain_timeout_s` for the
        requests in flight (queued ones included) and runs the engine's shutdown."""

        def handle_exit(self, sig, frame) -> None:
            service = getattr(app.state, "service", None)
            if service is not None and not service.admission.closed:
                service.admission.close()
                logging.getLogger("askwise.server").info(
                    "draining: %d in flight, %d queued", service.admission.in_flight,
                    service.admission.queued)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level,
                            timeout_graceful_shutdown=settings.drain_timeout_s)
    DrainingServer(config).run()
    return 0
