"""Validation of WITSML documents against the Energistics schemas, for the export tests."""

from __future__ import annotations

import subprocess
import sys

__all__ = ["schema_problem"]

_VALIDATE = """
import sys
if sys.argv[1] == "2.0":
    from komle.bindings.v20 import witsml
else:
    from komle.bindings.v1411.write import witsml
witsml.CreateFromDocument(sys.stdin.buffer.read())
"""


def schema_problem(document: bytes, version: str) -> str | None:
    """None if ``document`` is valid against the Energistics WITSML ``version`` schema, else why.

    The check is komle-plus's PyXB bindings of the Energistics schemas (1.4.1.1: the generated
    "write" schemas, what a store accepts in AddToStore; 2.0: the normative schema), which check
    element order, required elements, types and enumerations when they parse a document. Each
    version runs in its own interpreter: the two bindings cannot be imported into one process.
    (energyml-witsml2-0 1.12, the xsdata binding, cannot serve for 2.0: its ``Log`` inherits GML's
    ``AbstractObject`` instead of Energistics' through a name clash, so it refuses ``eml:Citation``.)
    """
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _VALIDATE, version],
        input=document,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == 0:
        return None
    return proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1]
