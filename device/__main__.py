"""`python -m device run --config kit.toml` runs the kit; `python -m device check --config kit.toml`
says whether it is ready."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .config import ConfigError, load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device", description="The AstroPlant kit agent.")
    parser.add_argument("command", choices=["run", "check"], help="run the kit, or check that it is ready")
    parser.add_argument("--config", default="kit.toml", help="the kit.toml from the kit's bundle (default: ./kit.toml)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The SDK logs every publish at INFO; its warnings are what matter.
    logging.getLogger("AWSIoTPythonSDK").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"Configuration problem: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        from .check import run_checks

        return 0 if run_checks(config) else 1

    from .agent import Agent

    agent = Agent(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
