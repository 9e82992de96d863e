// The dashboard's one stylesheet, served by backproof itself at /assets/dashboard.css (the CSP
// allows styles from 'self' only: no inline style anywhere). Kept as text here so the build ships
// it inside dist/ without a copy step. Colours: green ok, amber needs a look, red failing.

export const STYLESHEET = `
:root { --ok: #1a7f37; --warn: #b35900; --bad: #cf222e; --unknown: #6e7781; --fg: #1f2328; --muted: #59636e;
  --line: #d1d9e0; --bg: #ffffff; --panel: #f6f8fa; --s0: #0969da; --s1: #8250df; --s2: #1a7f37; --s3: #bf3989;
  --s4: #9a6700; --s5: #1b7c83; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--s0); }
code, pre, time { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
header.top { display: flex; gap: 1.5rem; align-items: baseline; padding: .6rem 1.2rem; background: var(--panel);
  border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header.top .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
header.top nav ul { display: flex; gap: 1.2rem; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }
header.top nav li.current .job-name { font-weight: 700; }
header.top nav .job-name { margin-right: .3rem; }
main { padding: 1rem 1.2rem 2rem; max-width: 1200px; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.4rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
footer { padding: .8rem 1.2rem; color: var(--muted); border-top: 1px solid var(--line); }
.summary { font-weight: 600; padding: .5rem .8rem; border-radius: 6px; }
.summary-ok { background: #dafbe1; }
.summary-bad { background: #ffebe9; }
section.job, section.drill { border: 1px solid var(--line); border-radius: 8px; padding: .2rem 1rem 1rem; margin: 1rem 0; }
section.job h2 { display: flex; gap: .7rem; align-items: center; }
.light { display: inline-flex; align-items: center; gap: .35rem; font-size: .85rem; font-weight: 600; }
.light .dot { width: .8rem; height: .8rem; border-radius: 50%; display: inline-block; }
.light-ok { color: var(--ok); } .light-ok .dot { background: var(--ok); }
.light-warn { color: var(--warn); } .light-warn .dot { background: var(--warn); }
.light-bad { color: var(--bad); } .light-bad .dot { background: var(--bad); }
.light-unknown { color: var(--unknown); } .light-unknown .dot { background: var(--unknown); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600; color: #fff; }
.badge-ok { background: var(--ok); } .badge-warn { background: var(--warn); }
.badge-bad { background: var(--bad); } .badge-unknown { background: var(--unknown); }
.tag { display: inline-block; padding: 0 .4rem; border: 1px solid var(--line); border-radius: 4px; font-size: .8rem; color: var(--muted); }
.problem { color: var(--bad); }
.none, .objective, .offset, .took { color: var(--muted); }
.links { margin: .2rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .6rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ul.notes li { color: var(--warn); }
ol.steps { padding-left: 1.4rem; }
ol.steps li { margin: .3rem 0; }
ol.steps li p { margin: .1rem 0; }
li.step-failed > p:first-child { color: var(--bad); }
.failure { border-left: 4px solid var(--bad); padding: .1rem .8rem; background: #fff8f7; margin-top: .8rem; }
pre.evidence { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem;
  overflow-x: auto; white-space: pre-wrap; word-break: break-word; max-height: 24rem; }
ul.tables { margin: 0; padding-left: 1rem; }
ul.checks { list-style: none; padding-left: .5rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: .5rem; }
figure.chart figcaption { font-weight: 600; margin-bottom: .3rem; }
figure.chart svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .line { fill: none; stroke-width: 2; }
svg .point { stroke: #fff; stroke-width: 1; }
svg .mark { fill: none; stroke: var(--bad); stroke-width: 2.5; }
svg .threshold { stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 6 4; }
.line.series-0 { stroke: var(--s0); } .point.series-0, .swatch.series-0 { fill: var(--s0); background: var(--s0); }
.line.series-1 { stroke: var(--s1); } .point.series-1, .swatch.series-1 { fill: var(--s1); background: var(--s1); }
.line.series-2 { stroke: var(--s2); } .point.series-2, .swatch.series-2 { fill: var(--s2); background: var(--s2); }
.line.series-3 { stroke: var(--s3); } .point.series-3, .swatch.series-3 { fill: var(--s3); background: var(--s3); }
.line.series-4 { stroke: var(--s4); } .point.series-4, .swatch.series-4 { fill: var(--s4); background: var(--s4); }
.line.series-5 { stroke: var(--s5); } .point.series-5, .swatch.series-5 { fill: var(--s5); background: var(--s5); }
ul.legend { list-style: none; display: flex; gap: 1rem; padding: 0; margin: .3rem 0 0; flex-wrap: wrap; color: var(--muted); }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
.swatch.mark { border: 2px solid var(--bad); border-radius: 50%; background: transparent; }
.swatch.threshold { border-top: 2px dashed var(--bad); height: 0; border-radius: 0; }
svg.timeline { width: 100%; max-width: 760px; height: auto; display: block; margin: .4rem 0; }
svg.timeline text { font-size: 11px; fill: var(--fg); }
.bar-ok rect { fill: var(--ok); } .bar-warning rect { fill: var(--warn); }
.bar-failed rect { fill: var(--bad); } .bar-skipped rect { fill: var(--unknown); }
`;
