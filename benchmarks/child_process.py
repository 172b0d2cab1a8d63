"""What the training benchmarks share: each configuration runs in a fresh Python (``SCRIPT --child CONFIG
SPEC``), so no model, thread pool or allocator state carries from one to the next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(script: str, config: str, spec: Path) -> dict:
    """Run ``script --child config spec`` (its stderr shows as it goes) and return the JSON row it prints last;
    exit with a one-line message if it fails."""
    print(f"... {config}", file=sys.stderr, flush=True)
    command = [sys.executable, script, "--child", config, str(spec)]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{config} failed (its stderr is above)")
    return json.loads(result.stdout.strip().splitlines()[-1])
