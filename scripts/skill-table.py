#!/usr/bin/env python3
"""Formats `gridcast evaluate --json` output as the Markdown table of docs/skill.md.

Usage: gridcast evaluate --json | scripts/skill-table.py
"""
import json
import sys

rows = json.load(sys.stdin)
by_key = {(r["variable"], r["lead_hours"], r["system"]): r for r in rows}
systems = sorted({r["system"] for r in rows} - {"persistence", "climatology"})
model = systems[0] if systems else None
if model is None:
    sys.exit("no model rows to tabulate: `gridcast evaluate --model persistence` (or "
             "climatology) scores only baselines; omit --model or name a trained model")
variables = list(dict.fromkeys(r["variable"] for r in rows))
leads = sorted({r["lead_hours"] for r in rows})

print("| variable | lead (h) | model RMSE | persistence RMSE | climatology RMSE "
      "| model / persistence | model ACC | persistence ACC | inits |")
print("|---|---|---|---|---|---|---|---|---|")
for variable in variables:
    for lead in leads:
        m = by_key.get((variable, lead, model))
        p = by_key.get((variable, lead, "persistence"))
        c = by_key.get((variable, lead, "climatology"))
        if not (m and p):
            continue
        ratio = m["rmse"] / p["rmse"]
        fmt = lambda x: "-" if x is None else f"{x:.3f}"
        clim = f"{c['rmse']:.4g}" if c else "-"
        print(f"| {variable} | {lead} | {m['rmse']:.4g} | {p['rmse']:.4g} | {clim} "
              f"| {ratio:.2f} | {fmt(m['acc'])} | {fmt(p['acc'])} | {m['n_inits']} |")
