"""The Chalice stages' settings (.chalice/config.json), as the stack and its worker read them."""

from __future__ import annotations

import json
from typing import Any

from devstack.state import REPO_ROOT

CHALICE_CONFIG = REPO_ROOT / ".chalice" / "config.json"


def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(CHALICE_CONFIG.read_text(encoding="utf-8"))
    return config


def lambda_timeout(stage: str) -> int:
    """The stage's Lambda timeout in seconds (Chalice's default, 60, if none is set)."""
    config = chalice_config()
    return int(config["stages"].get(stage, {}).get("lambda_timeout") or config.get("lambda_timeout") or 60)
