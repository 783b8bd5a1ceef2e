"""Run the generated CloudFront Function in node (a `vm` context) and in Debian's njs.

`tests/edge/setup_engines.sh` installs njs; node must be on PATH. Each batch is one process;
`NodeSession` keeps one node process for per-example property tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from imgcdn_local.stack import function_error
from imgcore import DEFAULT_POLICY, InvalidRequest, rewrite

JS = Path(__file__).resolve().parent / "js"
SETUP = Path(__file__).resolve().parent / "setup_engines.sh"

Case = dict[str, Any]


def engine(name: str) -> str:
    """The path of a JavaScript engine, or a failure that says how to install it."""
    found = shutil.which(name)
    if found is None:
        msg = f"{name} is not on PATH; run {SETUP} first (the parity tests need node and njs)"
        raise RuntimeError(msg)
    return found


def _accept(case: Case) -> str | None:
    # A repeated header means its values joined by "," (what the Function does with multiValue).
    if case.get("accept_values") is not None:
        return ",".join(case["accept_values"])
    accept: str | None = case.get("accept")
    return accept


def python_outcome(case: Case) -> dict[str, Any]:
    """What imgcore.rewrite answers, in the shape the harnesses report."""
    try:
        derivative = rewrite(case["path"], case["query"], _accept(case))
    except InvalidRequest as exc:
        return {"status": 400, "field": exc.field}
    return {"status": 200, "uri": derivative.uri}


def python_response(case: Case) -> dict[str, Any]:
    """What the Python twin answers, as a whole: the URI, or a 400's body and headers.

    The 400 is the local stack's (`imgcdn_local.stack.function_error`), so the Function, its
    Python twin and the local stack answer one way.
    """
    try:
        derivative = rewrite(case["path"], case["query"], _accept(case))
    except InvalidRequest as exc:
        headers, body = function_error(exc, DEFAULT_POLICY)
        return {"status": 400, "body": body.decode(), "headers": headers}
    return {"status": 200, "uri": derivative.uri}


def response(result: dict[str, Any]) -> dict[str, Any]:
    """A harness result reduced to what must equal `python_response`."""
    if result.get("status") == 400:
        return {"status": 400, "body": result["body"], "headers": result["headers"]}
    return comparable(result)


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A harness result reduced to what must equal `python_outcome`."""
    if result.get("status") == 200:
        return {"status": 200, "uri": result["uri"]}
    if result.get("status") == 400:
        return {"status": 400, "field": result["field"]}
    return result


def run_node(function_file: Path, cases: Sequence[Case], *, mode: str | None = None) -> Any:
    """Run `cases` through the Function in one node process."""
    argv = [engine("node"), str(JS / "run_node.js"), str(function_file)]
    if mode:
        argv.append(mode)
    done = subprocess.run(
        argv,
        input=json.dumps(list(cases)),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        msg = f"node failed ({done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout)


def run_njs(function_file: Path, cases: Sequence[Case], workdir: Path) -> list[dict[str, Any]]:
    """Run `cases` through the Function in one njs process (one concatenated script)."""
    script = workdir / "njs_batch.js"
    script.write_text(
        "\n".join(
            [
                function_file.read_text(encoding="utf-8"),
                (JS / "cloudfront_event.js").read_text(encoding="utf-8"),
                # ensure_ascii: the literal is ASCII, so no engine trips on U+2028 or encodings.
                "var CASES = " + json.dumps(list(cases)) + ";",
                (JS / "run_njs.js").read_text(encoding="utf-8"),
            ]
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [engine("njs"), str(script)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        msg = f"njs failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}"
        raise RuntimeError(msg)
    # JSON.stringify escapes every line break, so the only ones are the chunks' (run_njs.js).
    results: list[dict[str, Any]] = json.loads(done.stdout.replace("\n", ""))
    return results


class NodeSession:
    """One node process answering one batch per line, for property tests."""

    def __init__(self, function_file: Path) -> None:
        """Start node on the generated Function."""
        self._process = subprocess.Popen(
            [engine("node"), str(JS / "run_node.js"), str(function_file), "--lines"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def run(self, case: Case) -> dict[str, Any]:
        """The Function's answer to one case."""
        result: dict[str, Any] = self.run_batch([case])[0]
        return result

    def run_batch(self, cases: Sequence[Case]) -> list[dict[str, Any]]:
        """The Function's answers to `cases`, in order."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(list(cases)) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            msg = f"node exited with {self._process.wait()}"
            raise RuntimeError(msg)
        results: list[dict[str, Any]] = json.loads(line)
        return results

    def close(self) -> None:
        """Stop node."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop node."""
        self.close()
