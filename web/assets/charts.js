/*
 * charts.js — the per-minute charts of mailroom-web, drawn as SVG by the page itself
 * (no library): one chart per queue, sent and failed (failed + rejected) per minute
 * over the history /api/history returns. Elements are made with createElementNS and
 * every text is set with textContent.
 */
'use strict';

window.mailroomCharts = (function () {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 600, H = 170, LEFT = 40, RIGHT = 8, TOP = 8, BOTTOM = 20;

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The smallest "nice" number (1, 2, 5 times a power of ten) at least v.
  function niceCeil(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function hhmm(minute) {
    const d = new Date(minute * 60000);
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  function points(values, n, ymax) {
    const w = W - LEFT - RIGHT, h = H - TOP - BOTTOM;
    const step = n > 1 ? w / (n - 1) : 0;
    return values.map((v, i) =>
      (LEFT + i * step).toFixed(1) + ',' + (TOP + h - (v / ymax) * h).toFixed(1)).join(' ');
  }

  // Draws the chart of one queue's history into container (emptied first).
  function draw(container, hist) {
    const n = hist.sent.length;
    const failed = hist.failed.map((v, i) => v + (hist.rejected[i] || 0));
    const total = (a) => a.reduce((s, v) => s + v, 0);
    const ymax = niceCeil(Math.max(1, ...hist.sent, ...failed));
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
      'aria-label': `sent and failed per minute, queue ${hist.queue}` });
    root.appendChild(svg('title', {}, `queue ${hist.queue}: ${total(hist.sent)} sent, ` +
      `${total(failed)} failed in the last ${n} minutes`));
    const y0 = H - BOTTOM;
    root.appendChild(svg('line', { class: 'axis', x1: LEFT, y1: y0, x2: W - RIGHT, y2: y0 }));
    root.appendChild(svg('line', { class: 'axis', x1: LEFT, y1: TOP, x2: W - RIGHT, y2: TOP }));
    root.appendChild(svg('text', { class: 'label', x: LEFT - 4, y: TOP + 8, 'text-anchor': 'end' },
      String(ymax)));
    root.appendChild(svg('text', { class: 'label', x: LEFT - 4, y: y0, 'text-anchor': 'end' }, '0'));
    for (const f of [0, 1 / 3, 2 / 3, 1]) {
      const i = Math.round(f * (n - 1));
      const x = LEFT + (n > 1 ? (i / (n - 1)) * (W - LEFT - RIGHT) : 0);
      const anchor = f === 0 ? 'start' : f === 1 ? 'end' : 'middle';
      root.appendChild(svg('text', { class: 'label', x: x, y: H - 5, 'text-anchor': anchor },
        hhmm(hist.start_minute + i)));
    }
    root.appendChild(svg('polyline', { class: 'sent', points: points(hist.sent, n, ymax) }));
    root.appendChild(svg('polyline', { class: 'failed', points: points(failed, n, ymax) }));
    container.replaceChildren(root);
    return { sent: total(hist.sent), failed: total(failed) };
  }

  return { draw };
})();
