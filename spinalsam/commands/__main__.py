"""`python -m spinalsam.commands [--llm]`: one command per stdin line → one JSON array per line.

Only the operation arrays go to stdout (so the output can be scored or piped); notes about
fallbacks or misunderstood text go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from spinalsam.commands.llm import LLMConfigError, LLMParser
from spinalsam.commands.router import Router
from spinalsam.ops import dump_operations
from spinalsam.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spinalsam.commands", description=__doc__)
    parser.add_argument(
        "--llm", action="store_true", help="ask the LLM (DEEPSEEK_* env) when unsure"
    )
    args = parser.parse_args(argv)
    router = Router()
    if args.llm:
        try:
            config = load_settings().llm
        except (SettingsError, LLMConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if config is None:
            print(
                "note: no DEEPSEEK_API_KEY (and no local DEEPSEEK_BASE_URL); offline parser only",
                file=sys.stderr,
            )
        else:
            router = Router(LLMParser(config))
    # Commands are often Chinese: read and write UTF-8 whatever the locale (CI may have none).
    for stream in (sys.stdin, sys.stdout):
        stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    for line in sys.stdin:
        text = line.strip()
        result = router.parse(text) if text else None
        ops = dump_operations(result.operations) if result else []
        print(json.dumps(ops, ensure_ascii=False), flush=True)
        if result and (result.note or result.confirm):
            print(f"note: {' '.join(filter(None, (result.note, result.confirm)))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
