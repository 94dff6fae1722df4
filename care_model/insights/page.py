"""The insights as HTML: plots (PNG data URIs) with the exact numbers in tables beside them.

Every title names the source of the scores. Table cells carry the full-precision number in
``data-v`` (what the browser test compares with the pure functions); the text shows 3 decimals.
Session ids are links with ``data-session`` (the Insights tab opens them in the review screen).
"""
from __future__ import annotations

import base64
import html

from care_model.core.records import now_iso
from care_model.insights import plots

# The report's look (care_model.report.page.CSS, not imported: that module reaches the trainer's code).
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.4em;border-bottom:1px solid #ddd} h3{font-size:1em}
table.care-t2{border-collapse:collapse;font-size:.86em;margin:.5em 0}
.care-t2 th,.care-t2 td{border:1px solid #ccc;padding:3px 6px;text-align:center}
.care-t2 td.lbl{text-align:left;min-width:10em;max-width:40em} .care-t2 tr.pub td{background:#f6f6f0;color:#555;
font-style:italic} .ci{color:#666;font-size:.85em;white-space:nowrap} .note{color:#555;font-size:.85em}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.4em .6em;margin:.5em 0}
.plots img{max-width:100%;border:1px solid #eee;margin:.3em 0} .plots figure{margin:.4em 0}
figcaption{font-size:.85em;color:#444}
.ins-open{cursor:pointer;color:#1f5fbf;text-decoration:underline} .refusal{background:#fdecea;border:1px solid #e6a1a1;
padding:.4em .6em;margin:.5em 0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.rupture{color:#c62828;font-weight:bold} .rationale{font-size:.85em;color:#333;text-align:left;max-width:60em}
"""
PLOT_NAMES = ("profiles", "patterns", "trajectories", "groups")


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def num(v, digits: int = 3, cls: str = "") -> str:
    if v is None:
        return f'<td class="num {cls}" data-v="">–</td>'
    return f'<td class="num {cls}" data-v="{float(v)!r}">{float(v):.{digits}f}</td>'


def num_ci(e: dict, cls: str = "") -> str:
    """A cell with the estimate (``data-v``) and its interval beside it."""
    return f"{num(e.get('value'), cls=cls)[:-len('</td>')]} {_ci(e)}</td>"


def _ci(e: dict) -> str:
    if e.get("low") is None:
        return f'<span class="ci" title="{esc(e.get("reason"))}">(no interval)</span>'
    return f'<span class="ci">[{e["low"]:.3f}, {e["high"]:.3f}]</span>'


def session_link(sid: str) -> str:
    return f'<a class="ins-open" data-session="{esc(sid)}" href="#session-{esc(sid)}">{esc(sid)}</a>'


def _refused(view: dict, element_id: str) -> str:
    return f'<div class="refusal" id="{element_id}">{esc(view["refusal"])}</div>'


def render_plots(data: dict) -> dict[str, bytes]:
    src = data["source"]
    pngs = {"profiles": plots.profiles_plot(data["profiles"], f"Counselor profiles: mean scores ({src})")}
    pat = data["patterns"]
    pngs["patterns"] = (plots.placeholder(f"Interaction patterns ({src})", pat["refusal"]) if "refusal" in pat else
                        plots.coefficient_plot(pat["fits"], f"Pattern coefficients, clustered 95% CI ({src})"))
    pngs["trajectories"] = plots.trajectories_plot(data["trajectories"], f"Client trajectories ({src})")
    grp = data["groups"]
    pngs["groups"] = (plots.placeholder(f"Known groups ({src})", grp["refusal"]) if "refusal" in grp else
                      plots.groups_plot(grp, grp["values"], f"{grp['field']}: {grp['a']} vs {grp['b']} ({src})"))
    return pngs


def _img(name: str, png: bytes, caption: str) -> str:
    return (f'<figure><img id="ins-plot-{name}" alt="{name}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}"><figcaption>{esc(caption)}</figcaption></figure>')


def profiles_html(p: dict, src: str) -> str:
    dims = p["dims"]
    head = "".join(f"<th>{d.capitalize()} [95% CI]</th>" for d in dims)
    rows = [f'<tr data-counselor="@overall"><td class="lbl">All scored sessions (reference line)</td>'
            f'<td>{p["n_sessions"]}</td>' + "".join(num_ci(p["overall"][d]) for d in dims)
            + f"<td>{esc(p['weakest_overall'])}</td><td></td></tr>"]
    for q in p["profiles"]:
        rows.append(f'<tr data-counselor="{esc(q["counselor"])}"><td class="lbl">{esc(q["counselor"])}</td>'
                    f'<td>{q["n"]}</td>' + "".join(num_ci(q["dims"][d]) for d in dims)
                    + f'<td>{esc(q["weakest"])}</td><td class="rupture">{esc(", ".join(q["below_overall"]))}</td></tr>')
    msg = f'<div class="warn" id="ins-profiles-msg">{esc(p["message"])}</div>' if p.get("message") else ""
    few = (f'<div class="note">Fewer than {p["min_sessions"]} sessions (no profile): '
           + esc(", ".join(f"{t['counselor']} ({t['n']})" for t in p["too_few"])) + "</div>") if p["too_few"] else ""
    return (f'<h2 id="ins-profiles-title">Counselor profiles (source: {esc(src)})</h2>{msg}'
            f'<table class="care-t2" id="ins-profiles"><thead><tr><th>Counselor</th><th>n</th>{head}'
            f'<th>Weakest</th><th>Below the overall mean beyond its interval</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{few}'
            '<div class="note">Intervals: 95% percentile bootstrap over clients (all of a client\'s sessions '
            'resampled together). Sessions without a counselor id count in the overall mean only '
            f'({p["sessions_without_counselor"]} of {p["n_sessions"]}).</div>')


def patterns_html(pat: dict, src: str) -> str:
    title = f'<h2 id="ins-patterns-title">Interaction patterns and alliance (source: {esc(src)})</h2>'
    if "refusal" in pat:
        return title + _refused(pat, "ins-patterns-refusal")
    parts = [title, f'<div class="note">Mapping <b>{esc(pat["mapping_title"])}</b> ({esc(pat["citation"])}). '
                    f'{esc(pat["notes"])} {pat["n_coded"]} sessions with counted pairs. Reference pattern (left out, '
                    f'the proportions sum to 1): <b>{esc(pat["reference"])}</b>. A coefficient is the change in the '
                    'dimension when all of a session\'s pairs move from the reference to that pattern.</div>']
    mp = pat["mean_proportions"]
    parts.append('<table class="care-t2" id="ins-proportions"><thead><tr><th>Pattern</th><th>Mean proportion</th>'
                 '</tr></thead><tbody>' + "".join(f'<tr data-term="{esc(k)}"><td class="lbl">{esc(k)}</td>{num(v)}'
                                                  '</tr>' for k, v in mp.items()) + "</tbody></table>")
    for f in pat["fits"]:
        if f["reason"]:
            parts.append(f'<h3>{f["dim"].capitalize()}</h3><div class="refusal" id="ins-pat-{f["dim"]}-refusal">'
                         f'{esc(f["reason"])}</div>')
            continue
        body = "".join(f'<tr data-term="{esc(t["term"])}"><td class="lbl">{esc(t["term"])}</td>'
                       + "".join(num(t[c], cls=c) for c in ("coef", "se", "low", "high", "p")) + "</tr>"
                       for t in f["terms"])
        dropped = f" Left out (no session shows them): {esc(', '.join(f['dropped']))}." if f["dropped"] else ""
        parts.append(f'<h3>{f["dim"].capitalize()}: n = <span id="ins-pat-{f["dim"]}-n">{f["n"]}</span> sessions, '
                     f'{f["n_clients"]} clients, R² = <span id="ins-pat-{f["dim"]}-r2" data-v="{f["r2"]!r}">'
                     f'{f["r2"]:.3f}</span></h3><table class="care-t2" id="ins-pat-{f["dim"]}"><thead><tr><th>Term</th>'
                     '<th>Coefficient</th><th>Clustered SE</th><th>95% low</th><th>95% high</th><th>p</th></tr></thead>'
                     f'<tbody>{body}</tbody></table><div class="note">{esc(f["method"])}.{dropped} Baseline: the '
                     'intercept-only model (R² = 0).</div>')
    parts.append(published_html(pat.get("published")))
    return "".join(parts)


def published_html(pub: dict | None) -> str:
    if not pub:
        return ('<div class="note" id="ins-published">The paper\'s published Table 8 is for another corpus and '
                'coding scheme (clientbehavior mapping); it is not shown beside this mapping.</div>')
    head = (f'<h3 id="ins-published-title">Reference: {esc(pub.get("title"))} -- published, different corpus '
            f'({esc(pub.get("corpus"))})</h3>')
    coefs = pub.get("coefficients")
    if not coefs:
        return head + f'<div class="note" id="ins-published">{esc(pub.get("missing_reason"))}</div>'
    rows = "".join(f'<tr class="pub"><td class="lbl">{esc(k)}</td>' + "".join(num((v or {}).get(d), 2)
                                                                             for d in ("goal", "task", "bond"))
                   + "</tr>" for k, v in coefs.items())
    return head + ('<table class="care-t2" id="ins-published"><thead><tr><th>Pattern (published)</th><th>Goal</th>'
                   f'<th>Task</th><th>Bond</th></tr></thead><tbody>{rows}</tbody></table>')


def trajectories_html(t: dict, src: str) -> str:
    title = (f'<h2 id="ins-traj-title">Client trajectories (source: {esc(src)}; rupture: a drop of at least '
             f'{t["drop"]:g} point)</h2>')
    if t["statement"]:
        return title + f'<div class="warn" id="ins-traj-statement">{esc(t["statement"])}</div>'
    rows = []
    for c in t["clients"]:
        seq = " → ".join(f'{session_link(s["session_id"])} ('
                         + "/".join("–" if s["dims"].get(d) is None else f'{s["dims"][d]:.2f}' for d in t["dims"]) + ")"
                         for s in c["sessions"])
        rup = "; ".join(f'{r["dim"]} {r["from"]:.2f}→{r["to"]:.2f} at {session_link(r["to_session"])}'
                        for r in c["ruptures"])
        rows.append(f'<tr data-client="{esc(c["client"])}"><td class="lbl">{esc(c["client"])}</td>'
                    f'<td>{len(c["sessions"])}</td><td class="lbl">{seq}</td><td class="rupture">{rup}</td></tr>')
    dims = "/".join(d.capitalize() for d in t["dims"])
    return (title + f'<table class="care-t2" id="ins-traj"><thead><tr><th>Client</th><th>Sessions</th>'
            f'<th>Sessions in order ({dims})</th><th>Ruptures</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<div class="note">Order: the session number or date in the metadata, else the transcript id or session '
            'id (AnnoMI has no dates: its transcripts of one video share a client and follow their transcript ids).'
            '</div>')


def groups_html(g: dict, src: str) -> str:
    if "refusal" in g:
        return (f'<h2 id="ins-groups-title">Known-groups validity (source: {esc(src)})</h2>'
                + _refused(g, "ins-groups-refusal"))
    rows = "".join(
        f'<tr data-dim="{d}"><td class="lbl">{d.capitalize()}</td><td>{r["n_a"]}</td><td>{r["n_b"]}</td>'
        f'{num(r["mean_a"])}{num(r["mean_b"])}{num_ci(r["difference"], "diff")}{num_ci(r["auc"], "auc")}'
        '<td>0.500</td></tr>'
        for d, r in g["dims"].items())
    left = f' {g["left_out"]} sessions of other levels left out.' if g["left_out"] else ""
    return (f'<h2 id="ins-groups-title">Known-groups validity: {esc(g["field"])} = {esc(g["a"])} vs {esc(g["b"])} '
            f'(source: {esc(src)})</h2><table class="care-t2" id="ins-groups"><thead><tr><th>Dimension</th>'
            f'<th>n {esc(g["a"])}</th><th>n {esc(g["b"])}</th><th>Mean {esc(g["a"])}</th><th>Mean {esc(g["b"])}</th>'
            f'<th>Difference ({esc(g["a"])} − {esc(g["b"])}) [95% CI]</th><th>AUC [95% CI]</th><th>Chance AUC</th>'
            f'</tr></thead><tbody>{rows}</tbody></table><div class="note">AUC: probability that a {esc(g["a"])} '
            f'session scores above a {esc(g["b"])} session (scikit-learn roc_auc_score, ties count half); intervals: '
            f'95% percentile bootstrap over clients.{left} Trivial baselines: difference 0, AUC 0.5.</div>')


def drilldown_html(d: dict, src: str) -> str:
    head = (f'<h3 id="ins-drill-title">{esc(d["who"])}: sessions with {esc(d["dim"])} ≤ {d["threshold"]:g} '
            f'(source: {esc(src)}; {len(d["sessions"])} of {d["n_sessions"]} sessions)</h3>')
    if not d["sessions"]:
        return head + '<div class="note" id="ins-drill-empty">No session at or below the threshold.</div>'
    rows = []
    for s in d["sessions"]:
        its = "".join(f'<div class="rationale">Item {i["item"]} (score {esc(i["score"])}): '
                      f'{esc(i["rationale"]) or "<i>no rationale (scores-only prediction)</i>"}'
                      f'{" — evidence turns " + esc(", ".join(map(str, i["evidence"]))) if i["evidence"] else ""}</div>'
                      for i in s["items"]) or '<i>no model prediction for these items</i>'
        rows.append(f'<tr data-session="{esc(s["session_id"])}"><td class="lbl">{session_link(s["session_id"])}</td>'
                    f'{num(s["value"], 2)}<td class="lbl">{its}</td></tr>')
    return head + ('<table class="care-t2" id="ins-drill"><thead><tr><th>Session (opens in Review)</th>'
                   f'<th>{esc(d["dim"].capitalize())}</th><th>The model\'s rationales and evidence</th></tr></thead>'
                   f'<tbody>{"".join(rows)}</tbody></table>')


CAPTIONS = {"profiles": "Grouped bars: each counselor's mean per dimension with its 95% client-bootstrap interval; "
                        "dashed lines: the overall means.",
            "patterns": "Each pattern's coefficient with its 95% interval (SE clustered by client); dashed: zero.",
            "trajectories": "Each client's sessions in order, one line per client; red x: a rupture.",
            "groups": "Scores of the two groups as box plots with the sessions over them; AUC in each title."}


def body(data: dict, pngs: dict[str, bytes]) -> str:
    src = data["source"]
    head = (f'<div class="note" id="ins-summary">Source: <b>{esc(src)}</b>. {data["n_scored"]} of '
            f'{data["n_sessions"]} sessions scored, {data["n_clients"]} clients.</div>')
    sec = {"profiles": profiles_html(data["profiles"], src), "patterns": patterns_html(data["patterns"], src),
           "trajectories": trajectories_html(data["trajectories"], src), "groups": groups_html(data["groups"], src)}
    parts = [head] + [f'<section id="ins-sec-{k}">{sec[k]}<div class="plots">{_img(k, pngs[k], CAPTIONS[k])}</div>'
                      f'</section>' for k in PLOT_NAMES]
    parts.append(f'<div class="note">Generated {now_iso()[:19].replace("T", " ")} UTC.</div>')
    return f'<div class="care-report" id="ins-report">{"".join(parts)}</div>'


def page(content: str, title: str = "CARE insights") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{content}</body></html>')
