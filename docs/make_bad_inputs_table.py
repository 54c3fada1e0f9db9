"""Write docs/bad-inputs.md: every case of tests/test_bad_inputs.py and the message it gets.

The table is generated from the test cases themselves, run as the tests run them (tiny files
in a fresh folder, the ``bigeval`` command line), so it cannot drift from what bigeval says:
``tests/test_bad_inputs.py::test_docs_table_is_current`` fails when it does.

Usage (from the repository root)::

    python3 docs/make_bad_inputs_table.py
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad-inputs.md"

HEADER = """\
# Bad input: what bigeval says

Every way input goes wrong that bigeval checks for, each a test case in
`tests/test_bad_inputs.py`, with the message the `bigeval` command prints for it (exit code 2
for an error; nothing is written). The files of each case are a few lines, in a fresh folder,
so paths are as typed. An error names the file and line, the value at fault, what was
expected and what to do; parameters name the option instead of a file.

Inputs marked *accepted* give the same results as the clean files. A contemporary group with
a single record is a *warning* with the count; the groups and their animals are written to
`single_record_groups.csv` in the output folder.

Written by `docs/make_bad_inputs_table.py` from the test cases; do not edit by hand.

| # | input | command | outcome | message |
|---|---|---|---|---|
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render(cases, run_case) -> str:
    """The markdown of the table: each case run in a fresh folder by ``run_case``."""
    rows = []
    for k, case in enumerate(cases, start=1):
        with tempfile.TemporaryDirectory() as tmp:
            rc, err = run_case(case, Path(tmp))
        said = [ln for ln in err.splitlines() if ln.startswith("bigeval")]
        if case.outcome == "accepted":
            outcome, message = "accepted", "(no message; the same results as the clean files)"
        else:
            outcome = "error" if rc == 2 else ("warning" if rc == 0 else f"exit {rc}")
            message = "\n".join(said)
        command = "bigeval " + " ".join(shlex.quote(a) for a in case.argv)
        if case.setup:
            command = "; ".join("bigeval " + " ".join(a) for a in case.setup) + "; " + command
        rows.append(f"| {k} | {_cell(case.what)} | `{_cell(command)}` | {outcome} | "
                    f"{_cell(message)} |")
    return HEADER + "\n".join(rows) + "\n"


def _load_cases():
    spec = importlib.util.spec_from_file_location("test_bad_inputs",
                                                  ROOT / "tests" / "test_bad_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.CASES, mod.run_case


def main() -> int:
    cases, run_case = _load_cases()
    text = render(cases, run_case)
    from bigeval.io.writers import write_text_atomic

    write_text_atomic(text, DOC)
    print(f"wrote {DOC.relative_to(ROOT)}: {len(cases)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
