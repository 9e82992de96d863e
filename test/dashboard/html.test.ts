// The template helper escapes every interpolation unless it is markup made by `html` or marked `raw`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeHtml, html, isHtml, joinHtml, raw } from '../../src/dashboard/html.js';

const HOSTILE = `<script>alert("x")</script> & 'quoted' <img src=x onerror=alert(1)>`;

describe('html templates', () => {
  it('escapes a string interpolated as text and as an attribute value', () => {
    const out = html`<p title="${HOSTILE}">${HOSTILE}</p>`.text;
    assert.equal(
      out,
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39; &lt;img src=x onerror=alert(1)&gt;">' +
        '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39; &lt;img src=x onerror=alert(1)&gt;</p>',
    );
    assert.doesNotMatch(out, /<script|<img/);
  });

  it('an attribute value cannot be closed by a quote from data', () => {
    const out = html`<a href="/x" data-job="${'" onmouseover="alert(1)'}">x</a>`.text;
    assert.equal(out, '<a href="/x" data-job="&quot; onmouseover=&quot;alert(1)">x</a>');
  });

  it('inserts nested markup as is, and escapes strings inside nested templates', () => {
    const inner = html`<b>${'<i>'}</b>`;
    assert.equal(html`<p>${inner}</p>`.text, '<p><b>&lt;i&gt;</b></p>');
  });

  it('interpolates arrays item by item, each escaped or inserted by its own kind', () => {
    const out = html`<ul>${['<a>', html`<li>ok</li>`, 3]}</ul>`.text;
    assert.equal(out, '<ul>&lt;a&gt;<li>ok</li>3</ul>');
  });

  it('renders null, undefined and false as nothing, numbers and true as text', () => {
    assert.equal(html`[${null}${undefined}${false}]`.text, '[]');
    assert.equal(html`[${0}|${1234567}|${true}]`.text, '[0|1234567|true]');
  });

  it('does not take a look-alike object for markup: only html/raw make markup', () => {
    const fake = { text: '<script>alert(1)</script>' };
    assert.equal(isHtml(fake), false);
    assert.equal(html`${fake}`.text, '[object Object]');
    assert.equal(isHtml(html`x`), true);
  });

  it('raw is the explicit way around escaping; joinHtml keeps markup and escapes nothing twice', () => {
    assert.equal(html`${raw('<hr>')}`.text, '<hr>');
    assert.equal(joinHtml([html`<i>${'a&b'}</i>`, html`<i>c</i>`], raw(', ')).text, '<i>a&amp;b</i>, <i>c</i>');
  });

  it('escapeHtml escapes the five characters that matter and nothing else', () => {
    assert.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;');
    assert.equal(escapeHtml('plain text / ünïcode'), 'plain text / ünïcode');
    assert.equal(escapeHtml('&amp;'), '&amp;amp;', 'already-escaped text is escaped again: data is never trusted');
  });
});
