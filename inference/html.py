"""`eastwest show`: one tagged report as a standalone HTML page (no scripts, no external files).

Entities are highlighted in their label's colour from configs/labels.yaml, with label and score
on hover; the record (partners and facts, each fact linked to its span) follows the text.
"""
from __future__ import annotations

from html import escape

from .schema import LABELS
from .tagger import Document

_STYLE = """
body{font:16px/1.9 "Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
.text{white-space:pre-wrap;border:1px solid #ddd;padding:1em;border-radius:6px}
mark{border-radius:3px;padding:0 2px;color:#fff}
mark sub{font-size:60%;margin-left:2px;opacity:.85}
.legend span{display:inline-block;margin:0 .6em .4em 0;padding:0 .4em;border-radius:3px;color:#fff}
table{border-collapse:collapse;margin-top:1em;font-size:14px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
"""


def render(doc: Document, title: str = "") -> str:
    colors = {label.name: label.color for label in LABELS.labels}
    parts, cursor = [], 0
    for i, e in enumerate(doc.entities):
        parts.append(escape(doc.text[cursor : e.start]))
        parts.append(
            f'<mark id="e{i}" style="background:{colors.get(e.label, "#555")}" title="{e.label} {e.score:.2f} [{e.start}:{e.end}]">'
            f"{escape(e.text)}<sub>{e.label}</sub></mark>"
        )
        cursor = e.end
    parts.append(escape(doc.text[cursor:]))
    starts = {e.start: i for i, e in enumerate(doc.entities)}
    record = doc.record
    partners = "".join(
        f"<li>{escape(p['helper'].get('full_name') or '?')} → {escape(p['recipient'].get('full_name') or '?')}</li>" for p in record.get("partners", [])
    ) or "<li>none found</li>"
    rows = "".join(
        "<tr>"
        f'<td><a href="#e{starts.get(f["start"], 0)}">{escape(f["text"])}</a></td><td>{f["label"]}</td>'
        f"<td>{escape(str(f.get('value')))}</td><td>{escape(str(f.get('unit') or ''))}</td>"
        f"<td>{escape(str(f.get('qualifier') or ''))}</td><td>{escape(str(f.get('date') or ''))}</td>"
        f"<td>{escape(str(f.get('category') or ''))}</td></tr>"
        for f in record.get("facts", [])
    )
    legend = "".join(f'<span style="background:{label.color}">{label.name}</span>' for label in LABELS.labels)
    return (
        f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="legend">{legend}</p><div class="text">{"".join(parts)}</div>'
        f"<h2>Partners</h2><ul>{partners}</ul><p>published: {escape(str(record.get('published') or 'unknown'))}</p>"
        "<h2>Facts</h2><table><tr><th>span</th><th>label</th><th>value</th><th>unit</th><th>qualifier</th>"
        f"<th>date</th><th>category</th></tr>{rows}</table></body></html>\n"
    )
