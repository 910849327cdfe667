"""Cohort QA report: static HTML pages in the QA folder to review a run in a browser.

Written with every run that writes QA figures, into the QA folder (never the
shareable output: the pages show the original faces):

* ``index.html``: one row per study (status, verification, PTV position
  category, removed volume, ROIs removed and clipped, maximum removed dose,
  landmark source, defacing check and face distance when measured, sagittal
  thumbnails before/after, a review column); sortable (click a header) and
  filterable (text and status) by a few lines of inline JavaScript, with no
  server, no network and nothing loaded from elsewhere, so it opens from
  ``file://``;
* ``studies/NNN.html``: one page per study with the QA figure, the frontal
  renders before/after (when they were made), the landmarks, cut planes,
  doses, structures and every verification check; failed studies show their
  error and the file it is about;
* ``plots/``: removed volume and PTV position category across the cohort,
  face distances (when measured); drawn for two or more defaced studies;
* ``review.csv``: one row per study with empty ``review`` and ``note``
  columns. A page opened from ``file://`` cannot write files: the review
  ticks are kept in the browser's localStorage (per report location) and the
  "Download review CSV" button saves them as a CSV of the same columns, to
  be put beside ``index.html`` in place of this one.

The report reads only what the run already has: the
:class:`~.pipeline.StudyOutcome` of each study (its summary) and the files
of :func:`.qa.write_study_qa` in the study's QA folder.
"""

from __future__ import annotations

import csv
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from .pipeline import QA_NAME
from .qa import QA_INFO, RENDER_AFTER, RENDER_BEFORE, THUMB_AFTER, THUMB_BEFORE

INDEX_NAME = "index.html"
REVIEW_NAME = "review.csv"
STUDIES_DIR = "studies"
PLOTS_DIR = "plots"
REVIEW_COLUMNS = ("study", "source", "status", "review", "note")
#: PTV position categories from least to most involved (:func:`.pipeline.ptv_positions`)
PTV_ORDER = ("no PTV", "entirely below", "same planes without overlap", "overlapping")
PTV_COLOURS = {"no PTV": "#9e9e9e", "entirely below": "#2e7d32", "same planes without overlap": "#f9a825",
               "overlapping": "#c62828"}


@dataclass
class ReportRow:
    """One study of the report, flattened from its outcome and QA files."""

    key: str
    source: str
    label: str  # source relative to the folder all studies share
    status: str
    message: str
    where: Optional[str]
    qa_dir: Optional[str]  # relative to the QA root, POSIX
    summary: Optional[dict]
    qa: dict

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def ptv_category(self) -> str:
        cats = list((self.summary or {}).get("ptv_position", {}).values())
        return max(cats, key=PTV_ORDER.index) if cats else "no PTV"

    def verification(self) -> Optional[dict]:
        return (self.summary or {}).get("verification")

    def structures(self) -> dict:
        return (self.summary or {}).get("structures") or {}

    def max_removed_dose(self) -> Optional[float]:
        doses = (self.summary or {}).get("doses") or []
        return max((d["max_removed_dose"] for d in doses), default=None) if doses else None

    def dose_units(self) -> str:
        doses = (self.summary or {}).get("doses") or []
        u = doses[0].get("units", "") if doses else ""
        return "Gy" if u.upper() == "GY" else u

    def face_check(self) -> Optional[dict]:
        return (self.qa.get("face") or {}).get("check")

    def file(self, name: str) -> Optional[str]:
        """Path of a QA file of this study relative to the QA root, if it exists."""
        return f"{self.qa_dir}/{name}" if self.qa_dir is not None and name in self.qa.get("_files", ()) else None


def _rows(qa_root: Path, outcomes: Sequence) -> List[ReportRow]:
    rows = []
    sources = [str(o.source) for o in outcomes]
    try:
        common = os.path.commonpath(sources) if len(sources) > 1 else os.path.dirname(sources[0]) if sources else ""
    except ValueError:  # mixed absolute and relative
        common = ""
    for n, o in enumerate(outcomes):
        qa_dir = None
        qa: dict = {}
        if o.status == "ok" and o.output is not None:
            folder = qa_root / o.output
            qa_dir = Path(os.path.normpath(o.output)).as_posix()
            if (folder / QA_INFO).is_file():
                with open(folder / QA_INFO, encoding="utf-8") as f:
                    qa = json.load(f)
            qa["_files"] = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        label = os.path.relpath(str(o.source), common) if common and str(o.source) != common else str(o.source)
        message = o.message or ""
        where = getattr(o, "where", None)
        if where and message.startswith(f"{where}: "):
            message = message[len(where) + 2:]  # the file is shown on its own
        rows.append(ReportRow(f"{n + 1:03d}", str(o.source), label, o.status, message, where, qa_dir, o.summary, qa))
    return rows


# ------------------------------------------------------------------ html
def _u(path: str) -> str:
    """A relative file path as a URL (percent-encoded, escaped for an attribute)."""
    from urllib.parse import quote

    return html.escape(quote(path, safe="/"), quote=True)


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


STYLE = """
body{font-family:system-ui,sans-serif;font-size:14px;margin:16px;color:#222}
h1{font-size:20px} h2{font-size:17px;margin-top:24px}
table{border-collapse:collapse} th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0} th.sortable{cursor:pointer} th.sortable:after{content:" \\2195";color:#888}
th[aria-sort=ascending]:after{content:" \\2191"} th[aria-sort=descending]:after{content:" \\2193"}
.num{text-align:right} .small{font-size:12px;color:#555}
.st-ok{background:#e8f5e9} .st-failed{background:#ffebee}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-weight:600}
.b-ok{background:#c8e6c9} .b-fail{background:#ffcdd2} .b-warn{background:#ffe0b2}
img.thumb{width:84px;height:84px;display:block}\ntd .small{max-width:150px} td.study{min-width:200px;max-width:300px;overflow-wrap:anywhere}
.controls{margin:8px 0 12px 0} .controls *{margin-right:8px;font-size:14px}
.figs img{max-width:100%;border:1px solid #ccc} .renders img{width:320px;margin-right:8px;border:1px solid #ccc}
.error{color:#b71c1c;font-weight:600} code{background:#f5f5f5;padding:0 3px}
"""

INDEX_JS = r"""
(function(){
  var table = document.getElementById('studies');
  var tbody = table.tBodies[0];
  var storeKey = 'defacert-review:' + location.pathname + ':';
  function cellValue(row, col){
    var td = row.cells[col];
    var v = td.getAttribute('data-sort');
    if (v === null) v = td.textContent.trim();
    return v;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, col){
    if (!th.classList.contains('sortable')) return;
    th.addEventListener('click', function(){
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function(h){ h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var numeric = th.getAttribute('data-type') === 'number';
      var rows = Array.prototype.slice.call(tbody.rows);
      rows.sort(function(a, b){
        var x = cellValue(a, col), y = cellValue(b, col), r;
        if (numeric) {
          var fx = parseFloat(x), fy = parseFloat(y);
          if (isNaN(fx)) fx = -Infinity; if (isNaN(fy)) fy = -Infinity;
          r = fx - fy;
        } else { r = x.localeCompare(y); }
        return asc ? r : -r;
      });
      rows.forEach(function(r){ tbody.appendChild(r); });
    });
  });
  var text = document.getElementById('filter-text'), status = document.getElementById('filter-status');
  function applyFilter(){
    var q = text.value.trim().toLowerCase(), s = status.value, shown = 0;
    Array.prototype.forEach.call(tbody.rows, function(row){
      var review = row.querySelector('select.review').value;
      var ok = (!q || row.textContent.toLowerCase().indexOf(q) >= 0);
      if (s === 'failed') ok = ok && row.getAttribute('data-status') !== 'ok';
      else if (s === 'not reviewed') ok = ok && !review;
      else if (s === 'accepted' || s === 'needs attention') ok = ok && review === s;
      else if (s) ok = ok && row.getAttribute('data-status') === s;
      row.style.display = ok ? '' : 'none';
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = shown + ' of ' + tbody.rows.length + ' studies shown';
  }
  text.addEventListener('input', applyFilter);
  status.addEventListener('change', applyFilter);
  Array.prototype.forEach.call(tbody.rows, function(row){
    var key = storeKey + row.getAttribute('data-source');
    var sel = row.querySelector('select.review'), note = row.querySelector('input.note');
    var saved = null;
    try { saved = JSON.parse(localStorage.getItem(key) || 'null'); } catch (e) { saved = null; }
    if (saved) { sel.value = saved.review || ''; note.value = saved.note || ''; }
    function save(){
      try { localStorage.setItem(key, JSON.stringify({review: sel.value, note: note.value})); } catch (e) {}
      row.setAttribute('data-review', sel.value);
      applyFilter();
    }
    sel.addEventListener('change', save);
    note.addEventListener('input', save);
    row.setAttribute('data-review', sel.value);
  });
  function csvField(v){ v = String(v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  document.getElementById('download-review').addEventListener('click', function(){
    var lines = ['study,source,status,review,note'];
    var rows = Array.prototype.slice.call(tbody.rows).sort(function(a, b){
      return a.getAttribute('data-key').localeCompare(b.getAttribute('data-key')); });
    rows.forEach(function(row){
      lines.push([row.getAttribute('data-key'), row.getAttribute('data-source'), row.getAttribute('data-status'),
                  row.querySelector('select.review').value, row.querySelector('input.note').value].map(csvField).join(','));
    });
    var blob = new Blob([lines.join('\n') + '\n'], {type: 'text/csv'});
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'review.csv';
    document.body.appendChild(a); a.click(); document.body.removeChild(a);
  });
  applyFilter();
})();
"""


def _page(title: str, body: str, script: str = "") -> str:
    js = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}{js}</body></html>\n"
    )


def _status_badge(row: ReportRow) -> str:
    cls = "b-ok" if row.ok else "b-fail"
    return f'<span class="badge {cls}">{_e(row.status)}</span>'


def _verification_cell(row: ReportRow):
    v = row.verification()
    if v is None:
        return "", "-1"
    checks = v.get("checks", [])
    passed = sum(1 for c in checks if c["passed"])
    failed = [c["name"] for c in checks if not c["passed"]]
    text = f"{passed}/{len(checks)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
    cls = "b-ok" if not failed else "b-fail"
    return f'<span class="badge {cls}">{_e(text)}</span>', str(passed - len(checks))


def _index_row(row: ReportRow, has_face: bool) -> str:
    s = row.summary or {}
    st = row.structures()
    removed = st.get("removed_rois") or []
    clipped = [c["name"] for c in st.get("clipped_rois") or []]
    page = f"{STUDIES_DIR}/{row.key}.html"
    source = f'<a href="{_u(page)}" title="{_e(row.source)}">{_e(row.label)}</a>'
    if not row.ok:
        source += f'<div class="error">{_e(row.message)}</div>'
        if row.where:
            source += f'<div class="small">file: <code class="file">{_e(row.where)}</code></div>'
    ver, ver_sort = _verification_cell(row)
    ptv = row.ptv_category() if row.summary else ""
    ptv_detail = "; ".join(f"{k}: {v}" for k, v in (s.get("ptv_position") or {}).items())
    tissue = row.qa.get("removed_tissue_cc")
    region = row.qa.get("removed_region_cc")
    dose = row.max_removed_dose()
    lm_info = s.get("landmarks") or {}
    lm = lm_info.get("source", "")
    if lm_info.get("confidence") is not None:
        lm += f" (confidence {lm_info['confidence']:.2f})"
    lm_warn = lm_info.get("warnings") or []
    cells = [
        f'<td class="num">{row.key}</td>',
        f'<td class="study">{source}</td>',
        f'<td data-sort="{_e(row.status)}">{_status_badge(row)}</td>',
        f'<td data-sort="{ver_sort}">{ver}</td>',
        f'<td data-sort="{PTV_ORDER.index(ptv) if ptv else -1}" title="{_e(ptv_detail)}">{_e(ptv)}</td>',
        f'<td class="num" data-sort="{_fmt(tissue, 3)}">{_fmt(tissue)}</td>',
        f'<td class="num" data-sort="{_fmt(region, 3)}">{_fmt(region)}</td>',
        f'<td data-sort="{len(removed)}" title="{_e(", ".join(removed))}">{len(removed) if row.summary else ""}'
        f'<div class="small">{_e(", ".join(removed))}</div></td>',
        f'<td data-sort="{len(clipped)}">{len(clipped) if row.summary else ""}<div class="small">{_e(", ".join(clipped))}</div></td>',
        f'<td class="num" data-sort="{_fmt(dose, 4)}">{_fmt(dose, 2)} {_e(row.dose_units()) if dose is not None else ""}</td>',
        f"<td>{_e(lm)}" + (f'<div><span class="badge b-warn" title="{_e("; ".join(lm_warn))}">{len(lm_warn)} warning'
                            f'{"s" if len(lm_warn) > 1 else ""}</span></div>' if lm_warn else "") + "</td>",
    ]
    if has_face:
        fc = row.face_check()
        if fc:
            cls = "b-ok" if fc.get("passed") else "b-fail"
            cells.append(f'<td data-sort="{_e(fc.get("verdict"))}"><span class="badge {cls}">{_e(fc.get("verdict"))}</span></td>')
            cells.append(f'<td class="num" data-sort="{fc.get("distance"):.4f}">{fc.get("distance"):.3f}'
                         f'<div class="small">threshold {fc.get("threshold"):.3f}</div></td>')
        else:
            cells += ['<td data-sort=""></td>', '<td data-sort=""></td>']
    thumbs = []
    for name, alt in ((THUMB_BEFORE, "before"), (THUMB_AFTER, "after")):
        f = row.file(name)
        thumbs.append(f'<a href="{_u(page)}"><img class="thumb" src="{_u(f)}" alt="{alt}"></a>' if f else "")
    cells.append(f"<td>{thumbs[0]}</td><td>{thumbs[1]}</td>")
    cells.append(
        '<td><select class="review"><option value=""></option><option value="accepted">accepted</option>'
        '<option value="needs attention">needs attention</option></select>'
        '<input class="note" type="text" size="14" placeholder="note"></td>'
    )
    klass = "st-ok" if row.ok else "st-failed"
    return (f'<tr class="{klass}" data-key="{row.key}" data-status="{_e(row.status)}" data-source="{_e(row.source)}">'
            + "".join(cells) + "</tr>")


def _index(rows: List[ReportRow], plots: List[str], output_root: Optional[Path], created: str) -> str:
    has_face = any(r.face_check() for r in rows)
    n_ok = sum(r.ok for r in rows)
    heads = [("#", "number"), ("study", "text"), ("status", "text"), ("verification", "number"),
             ("PTV position", "number"), ("removed tissue (cc, &gt; -400 HU)", "number"),
             ("removed region (cc)", "number"), ("ROIs removed", "number"), ("ROIs clipped", "number"),
             ("max removed dose", "number"), ("landmarks", "text")]
    if has_face:
        heads += [("defacing check", "text"), ("face distance", "number")]
    th = "".join(f'<th class="sortable" data-type="{t}">{h}</th>' for h, t in heads)
    th += "<th>before</th><th>after</th><th>review</th>"
    statuses = sorted({r.status for r in rows})
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in statuses)
    body = [
        "<h1>DefaceRT cohort QA report</h1>",
        f'<p>{len(rows)} studies: <b>{n_ok} ok</b>, <b>{len(rows) - n_ok} failed</b>. Written {_e(created)}'
        + (f"; defaced output in <code>{_e(output_root)}</code>" if output_root else "") + ". "
        "This folder shows the original faces: it is for review, not for sharing.</p>",
        '<div class="controls"><input id="filter-text" type="search" placeholder="filter (any text)" size="30">'
        '<select id="filter-status"><option value="">all studies</option>'
        f'{options}<option value="failed">failed (not ok)</option><option value="not reviewed">not reviewed</option>'
        '<option value="accepted">accepted</option><option value="needs attention">needs attention</option></select>'
        '<button id="download-review" type="button">Download review CSV</button>'
        '<span id="shown" class="small"></span></div>',
        f'<table id="studies"><thead><tr>{th}</tr></thead><tbody>',
        "\n".join(_index_row(r, has_face) for r in rows),
        "</tbody></table>",
        '<p class="small">Review: choose accepted / needs attention per study. A page opened from a file cannot '
        "write files, so the choices are kept in this browser (localStorage) and <b>Download review CSV</b> saves "
        f"them; put the file beside this page as <code>{REVIEW_NAME}</code> (written empty by the run).</p>",
    ]
    if plots:
        body.append("<h2>Cohort plots</h2>")
        body.append("".join(f'<img src="{_e(p)}" alt="{_e(Path(p).stem)}" style="max-width:48%;margin-right:1%">' for p in plots))
    return _page("DefaceRT cohort QA report", "".join(body), INDEX_JS)


def _table(headers: Sequence[str], rows: Sequence[Sequence], raw: bool = False) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in headers)
    trs = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _study_page(row: ReportRow, prev: Optional[str], nxt: Optional[str]) -> str:
    up = "../"
    nav = f'<p><a href="{up}{INDEX_NAME}">&larr; all studies</a>'
    nav += f' &middot; <a href="{prev}.html">previous</a>' if prev else ""
    nav += f' &middot; <a href="{nxt}.html">next</a>' if nxt else ""
    nav += "</p>"
    body = [nav, f"<h1>Study {row.key}: {_e(row.source)}</h1>", f"<p>status: {_status_badge(row)}</p>"]
    if not row.ok:
        body.append(f'<p class="error">{_e(row.message)}</p>')
        if row.where:
            body.append(f'<p>file: <code class="file">{_e(row.where)}</code></p>')
    s = row.summary or {}
    fig = row.file(QA_NAME)
    if fig:
        body.append(f'<h2>QA figure</h2><div class="figs"><a href="{up}{_u(fig)}"><img src="{up}{_u(fig)}" alt="QA figure"></a></div>')
    rb, ra = row.file(RENDER_BEFORE), row.file(RENDER_AFTER)
    if rb and ra:
        body.append('<h2>Frontal renders (skin surface, same camera)</h2><div class="renders">'
                    f'<img src="{up}{_u(rb)}" alt="render before"><img src="{up}{_u(ra)}" alt="render after"></div>'
                    '<p class="small">left: before, right: after</p>')
    for key in ("unavailable", "error"):
        if (row.qa.get("face") or {}).get(key):
            body.append(f'<p class="small">no frontal renders: {_e(row.qa["face"][key])}</p>')
    fc = row.face_check()
    if fc:
        body.append("<h2>Defacing check (face regions and recognition distance)</h2>")
        body.append(f"<p>verdict: <b>{_e(fc.get('verdict'))}</b>; distance to the original {fc.get('distance'):.3f} "
                    f"(match threshold {fc.get('threshold'):.3f})</p>")
        body.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in fc.get("reasons", [])) + "</ul>")
    elif (row.qa.get("face") or {}).get("check_unavailable"):
        body.append(f'<p class="small">no defacing check: {_e(row.qa["face"]["check_unavailable"])}</p>')
    lm = s.get("landmarks")
    if lm:
        body.append(f"<h2>Landmarks (from {_e(lm.get('source'))}) and cut planes, LPS mm</h2>")
        body.append(_table(
            ["eye", "centroid x, y, z", "inferior plane z", "superior plane z", "anterior y", "posterior y", "planes"],
            [[e["name"], ", ".join(f"{v:.1f}" for v in e["centroid_lps_mm"]), f"{e['inferior_plane_z_mm']:.2f}",
              f"{e['superior_plane_z_mm']:.2f}", f"{e['anterior_y_mm']:.2f}", f"{e['posterior_y_mm']:.2f}",
              e["number_of_planes"]] for e in lm.get("eyes", [])]))
        if lm.get("warnings"):
            body.append("<p>landmark warnings:</p><ul>" + "".join(f"<li>{_e(w)}</li>" for w in lm["warnings"]) + "</ul>")
        cut = s.get("cut", {})
        margins = (s.get("options") or {}).get("margins_mm", {})
        body.append(_table(["eye plane z", "coronal plane y", "middle plane z", "inferior margin", "posterior margin", "rule"],
                           [[f"{cut.get('eye_plane_z_mm', float('nan')):.2f}", f"{cut.get('coronal_plane_y_mm', float('nan')):.2f}",
                             f"{lm.get('middle_plane_z_mm', float('nan')):.2f}", margins.get("inferior", ""),
                             margins.get("posterior", ""), cut.get("removed_where", "")]]))
    img = s.get("image")
    if img:
        body.append("<h2>Removed</h2>")
        body.append(_table(["image voxels removed", "kept in the cut region", "removed region (cc)", "of it tissue above -400 HU (cc)"],
                           [[img["removed_voxels"], img["kept_voxels_in_cut_region"], _fmt(row.qa.get("removed_region_cc")),
                             _fmt(row.qa.get("removed_tissue_cc"))]]))
        if s.get("doses"):
            body.append(_table(["dose", "voxels zeroed", "max removed dose"],
                               [[n + 1, d["removed_voxels"], f"{d['max_removed_dose']:.3g} {d['units']}"]
                                for n, d in enumerate(s["doses"])]))
    st = row.structures()
    if st:
        body.append("<h2>Structures</h2>")
        body.append(_table(["removed", "kept whole", "clipped (contours clipped / vanished / split)", "untouched"], [[
            ", ".join(st.get("removed_rois", [])), ", ".join(st.get("kept_rois", [])),
            ", ".join(f"{c['name']} ({c['clipped_contours']}/{c['vanished_contours']}/{c['split_contours']})"
                      for c in st.get("clipped_rois", [])),
            ", ".join(st.get("untouched_rois", []))]]))
    if s.get("ptv_position"):
        body.append("<h2>PTV position relative to the removed region</h2>")
        body.append(_table(["PTV", "position"], list(s["ptv_position"].items())))
    v = row.verification()
    if v:
        body.append(f"<h2>Verification: {'passed' if v.get('passed') else 'FAILED'}</h2>")
        body.append(_table(["check", "result", "detail"], [
            [_e(c["name"]), f'<span class="badge {"b-ok" if c["passed"] else "b-fail"}">{"pass" if c["passed"] else "FAIL"}</span>',
             _e(c["detail"])] for c in v.get("checks", [])], raw=True))
    if s.get("timings_s"):
        body.append('<h2>Timings (s)</h2><p class="small">' + _e(", ".join(f"{k} {v}" for k, v in s["timings_s"].items())) + "</p>")
    return _page(f"DefaceRT QA: study {row.key}", "".join(body))


# ------------------------------------------------------------------ plots
def _plots(rows: List[ReportRow], folder: Path) -> List[str]:
    ok = [r for r in rows if r.ok and r.summary]
    if len(ok) < 2:
        return []  # a cohort plot of one study says nothing its table row does not (and costs a second)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    fs = 10
    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.6]})
    keys = [r.key for r in ok]
    vals = [r.qa.get("removed_tissue_cc") or 0.0 for r in ok]
    cats = [r.ptv_category() for r in ok]
    ax1.bar(range(len(ok)), vals, color=[PTV_COLOURS[c] for c in cats])
    ax1.set_xticks(range(len(ok)))
    ax1.set_xticklabels(keys, rotation=90, fontsize=fs - 1)
    ax1.set_ylabel("removed tissue (cc, > -400 HU)", fontsize=fs)
    ax1.set_xlabel("study", fontsize=fs)
    ax1.set_title("removed volume per study (colour: PTV position)", fontsize=fs)
    ax1.legend(handles=[Patch(color=PTV_COLOURS[c], label=c) for c in PTV_ORDER if c in cats], fontsize=fs - 1)
    counts = [cats.count(c) for c in PTV_ORDER]
    ax2.barh(range(len(PTV_ORDER)), counts, color=[PTV_COLOURS[c] for c in PTV_ORDER])
    ax2.set_yticks(range(len(PTV_ORDER)))
    ax2.set_yticklabels([c.replace("same planes without overlap", "same planes,\nno overlap") for c in PTV_ORDER], fontsize=fs - 1)
    ax2.set_xlabel("studies", fontsize=fs)
    ax2.set_title("PTV position category", fontsize=fs)
    fig.tight_layout()
    fig.savefig(str(folder / "removed_volume.png"))
    out.append(f"{PLOTS_DIR}/removed_volume.png")

    faced = [r for r in ok if r.face_check()]
    if faced:
        fig = Figure(figsize=(7.5, 3.6), dpi=100)
        ax = fig.subplots()
        d = [r.face_check()["distance"] for r in faced]
        thr = faced[0].face_check()["threshold"]
        colours = ["#2e7d32" if r.face_check()["passed"] else "#c62828" for r in faced]
        ax.scatter(range(len(faced)), d, c=colours, s=40, zorder=3)
        ax.axhline(thr, color="k", ls="--", lw=1, label=f"match threshold {thr:.3f} (below: still recognised)")
        ax.axhline(0, color="#1565c0", lw=1, label="before defacing: distance 0 (the same face)")
        ax.set_xticks(range(len(faced)))
        ax.set_xticklabels([r.key for r in faced], rotation=90, fontsize=fs - 1)
        ax.set_ylabel("face distance to the original", fontsize=fs)
        ax.set_xlabel("study", fontsize=fs)
        ax.set_title("face recognition distance, defaced vs original (green: defaced, red: face present)", fontsize=fs)
        ax.set_ylim(bottom=min(-0.02, float(np.min(d)) - 0.02))
        ax.legend(fontsize=fs - 1, loc="lower right")
        fig.tight_layout()
        fig.savefig(str(folder / "face_distance.png"))
        out.append(f"{PLOTS_DIR}/face_distance.png")
    return out


# ------------------------------------------------------------------ entry
def write_cohort_report(qa_root, outcomes: Sequence, output_root=None) -> Path:
    """Write ``index.html``, the study pages, the plots and ``review.csv``
    into ``qa_root`` for the run's ``outcomes`` (:class:`~.pipeline.StudyOutcome`);
    returns the path of ``index.html``."""
    qa_root = Path(qa_root)
    rows = _rows(qa_root, outcomes)
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    plots = _plots(rows, qa_root / PLOTS_DIR)
    (qa_root / STUDIES_DIR).mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(rows):
        prev = rows[n - 1].key if n > 0 else None
        nxt = rows[n + 1].key if n + 1 < len(rows) else None
        (qa_root / STUDIES_DIR / f"{row.key}.html").write_text(_study_page(row, prev, nxt), encoding="utf-8")
    index = qa_root / INDEX_NAME
    index.write_text(_index(rows, plots, Path(output_root) if output_root else None, created), encoding="utf-8")
    with open(qa_root / REVIEW_NAME, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REVIEW_COLUMNS)
        for r in rows:
            w.writerow([r.key, r.source, r.status, "", ""])
    return index


__all__ = ["INDEX_NAME", "REVIEW_NAME", "ReportRow", "write_cohort_report"]
