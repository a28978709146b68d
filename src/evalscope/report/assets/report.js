/* evalscope report: renders a report model (embedded JSON or served by `evalscope app`) with plain DOM and
   hand-written SVG charts. No dependency, no network request in a saved report. See docs/report.md. */
(function () {
  'use strict';
  var PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4d7c0f', '#db2777',
    '#64748b', '#ca8a04'];
  var SVGNS = 'http://www.w3.org/2000/svg';
  var CFG = window.EVALSCOPE || {};
  var APP = !!CFG.app;

  // ---- small helpers ---------------------------------------------------------------------------------
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] == null) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, kid) {
    if (kid == null || kid === false) return;
    if (Array.isArray(kid)) { kid.forEach(function (k) { add(parent, k); }); return; }
    parent.appendChild(typeof kid === 'object' ? kid : document.createTextNode(String(kid)));
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(v) {
    if (v == null || v === '') return '–';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v !== 'number') return String(v);
    if (!isFinite(v)) return String(v);
    var a = Math.abs(v);
    if (Number.isInteger(v)) return String(v);
    if (a >= 100) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return '0';
    return v.toPrecision(3);
  }
  function pct(v) { return v == null ? '–' : (v * 100).toFixed(2); }
  function numCell(v, key, cls) {
    var td = el('td', {cls: cls, text: fmt(v)});
    if (key) td.setAttribute('data-k', key);
    if (typeof v === 'number') td.setAttribute('data-v', String(v));
    return td;
  }
  function badge(s) { return el('span', {cls: 'badge ' + String(s), text: String(s)}); }
  function get(o, path) {
    var parts = path.split('.');
    for (var i = 0; i < parts.length; i++) { if (o == null) return undefined; o = o[parts[i]]; }
    return o;
  }
  function flatten(o, prefix, out) {
    out = out || {};
    if (o == null || typeof o !== 'object' || Array.isArray(o)) { out[prefix] = o; return out; }
    var keys = Object.keys(o);
    if (!keys.length) { out[prefix] = null; return out; }
    keys.forEach(function (k) { flatten(o[k], prefix ? prefix + '.' + k : k, out); });
    return out;
  }
  function section(id, title) {
    var s = el('section', {id: id}, el('h2', {text: title}));
    return s;
  }
  function api(path) {
    return fetch(path, {cache: 'no-store'}).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(t || r.statusText); });
      return r.json();
    });
  }
  function q(params) {
    return Object.keys(params).filter(function (k) { return params[k] != null && params[k] !== ''; })
      .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]); }).join('&');
  }

  // ---- charts ----------------------------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    var step = (r >= 5 ? 10 : r >= 2 ? 5 : r >= 1 ? 2 : 1) * mag;
    if (r < 1.5) step = mag;
    var out = [], t = Math.ceil(lo / step) * step;
    for (; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }
  function logTicks(lo, hi) {
    var out = [], a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    for (var e = a; e <= b; e++) {
      [1, 2, 5].forEach(function (m) {
        var v = m * Math.pow(10, e);
        if (v >= lo && v <= hi && (b - a <= 3 || m === 1)) out.push(v);
      });
    }
    if (out.length < 3) out = niceTicks(lo, hi, 5).filter(function (v) { return v > 0; });
    return out;
  }
  function tickFmt(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toPrecision(3).replace(/\.?0+$/, '') + 'M';
    if (a >= 1e4) return (v / 1e3).toPrecision(3).replace(/\.?0+$/, '') + 'k';
    if (a >= 1 || a === 0) return String(+v.toPrecision(4));
    return String(+v.toPrecision(2));
  }

  /* chart({title, series:[{name, pts:[[x,y],..], mode:'line'|'step'|'points', color}], xlabel, ylabel,
            xlog, ylog, vlines:[{x,label}], marks:[{x,y,label}], ymin0, xfmt, yfmt}) */
  function chart(o) {
    var W = 520, H = o.height || 250, ml = 56, mr = 12, mt = 8, mb = 38;
    var box = el('div', {cls: 'chart'});
    box.appendChild(el('div', {cls: 'ct', text: o.title}));
    var xs = [], ys = [], n = 0;
    o.series.forEach(function (s) {
      s.pts = (s.pts || []).filter(function (p) {
        return p[0] != null && p[1] != null && isFinite(p[0]) && isFinite(p[1]) &&
          (!o.xlog || p[0] > 0) && (!o.ylog || p[1] > 0);
      });
      s.pts.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); });
      n += s.pts.length;
    });
    (o.vlines || []).forEach(function (v) { xs.push(v.x); });
    var svg = sv('svg', {viewBox: '0 0 ' + W + ' ' + H, 'data-n': n, role: 'img', 'aria-label': o.title});
    box.setAttribute('data-n', n);
    box.appendChild(svg);
    if (!n) {
      svg.appendChild(sv('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#5f6b7a'})).textContent =
        o.empty || 'no data';
      return box;
    }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (o.ymin0 && !o.ylog) y0 = Math.min(0, y0);
    if (o.ymax != null) y1 = Math.max(y1, o.ymax);
    if (x1 === x0) { x0 = o.xlog ? x0 / 1.5 : x0 - 1; x1 = o.xlog ? x1 * 1.5 : x1 + 1; }
    if (y1 === y0) { y0 = o.ylog ? y0 / 1.5 : y0 - 1; y1 = o.ylog ? y1 * 1.5 : y1 + 1; }
    if (!o.ylog && !o.ymax) y1 = y1 + (y1 - y0) * 0.04;
    var lx = o.xlog ? Math.log10 : function (v) { return v; };
    var ly = o.ylog ? Math.log10 : function (v) { return v; };
    var X = function (v) { return ml + (lx(v) - lx(x0)) / (lx(x1) - lx(x0)) * (W - ml - mr); };
    var Y = function (v) { return H - mb - (ly(v) - ly(y0)) / (ly(y1) - ly(y0)) * (H - mt - mb); };
    var ax = sv('g', {'class': 'axis'});
    var xt = o.xlog ? logTicks(x0, x1) : niceTicks(x0, x1, 6);
    var yt = o.ylog ? logTicks(y0, y1) : niceTicks(y0, y1, 5);
    xt.forEach(function (t) {
      var x = X(t);
      ax.appendChild(sv('line', {x1: x, x2: x, y1: mt, y2: H - mb, 'class': 'gridl'}));
      var tx = ax.appendChild(sv('text', {x: x, y: H - mb + 13, 'text-anchor': 'middle'}));
      tx.textContent = (o.xfmt || tickFmt)(t);
    });
    yt.forEach(function (t) {
      var y = Y(t);
      ax.appendChild(sv('line', {x1: ml, x2: W - mr, y1: y, y2: y, 'class': 'gridl'}));
      var tx = ax.appendChild(sv('text', {x: ml - 4, y: y + 3, 'text-anchor': 'end'}));
      tx.textContent = (o.yfmt || tickFmt)(t);
    });
    ax.appendChild(sv('path', {d: 'M' + ml + ',' + mt + 'V' + (H - mb) + 'H' + (W - mr), fill: 'none'}));
    if (o.xlabel) ax.appendChild(sv('text', {x: (ml + W - mr) / 2, y: H - 6, 'text-anchor': 'middle'})).textContent = o.xlabel;
    if (o.ylabel) ax.appendChild(sv('text', {x: 12, y: (mt + H - mb) / 2, 'text-anchor': 'middle',
      transform: 'rotate(-90 12 ' + ((mt + H - mb) / 2) + ')'})).textContent = o.ylabel;
    svg.appendChild(ax);
    (o.vlines || []).forEach(function (v) {
      var x = X(v.x);
      svg.appendChild(sv('line', {x1: x, x2: x, y1: mt, y2: H - mb, stroke: '#94a3b8', 'stroke-dasharray': '4 3'}));
      if (v.label) svg.appendChild(sv('text', {x: x + 3, y: mt + 10, 'font-size': 10, fill: '#475569'})).textContent = v.label;
    });
    var hits = [];
    var legend = el('div', {cls: 'legend'});
    o.series.forEach(function (s, i) {
      var c = s.color || PALETTE[i % PALETTE.length];
      if (!s.pts.length) return;
      legend.appendChild(el('span', null, el('i', {style: 'background:' + c}), s.name));
      var mode = s.mode || 'line';
      if (mode === 'points') {
        var g = sv('g', {fill: c, 'fill-opacity': 0.55});
        s.pts.forEach(function (p) { g.appendChild(sv('circle', {cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: s.r || 2.2})); });
        svg.appendChild(g);
      } else {
        var d = '', prev = null;
        s.pts.forEach(function (p, j) {
          var x = X(p[0]).toFixed(1), y = Y(p[1]).toFixed(1);
          if (j === 0) d += 'M' + x + ',' + y;
          else if (mode === 'step') d += 'H' + x + 'V' + y;
          else d += 'L' + x + ',' + y;
          prev = p;
        });
        svg.appendChild(sv('path', {d: d, fill: 'none', stroke: c, 'stroke-width': 1.6}));
        if (s.pts.length <= 40) {
          var gm = sv('g', {fill: c});
          s.pts.forEach(function (p) { gm.appendChild(sv('circle', {cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 2.6})); });
          svg.appendChild(gm);
        }
      }
      s.pts.forEach(function (p) { hits.push([X(p[0]), Y(p[1]), s.name, p]); });
    });
    (o.marks || []).forEach(function (m) {
      svg.appendChild(sv('circle', {cx: X(m.x), cy: Y(m.y), r: 6, fill: 'none', stroke: '#111827', 'stroke-width': 2}));
      svg.appendChild(sv('text', {x: X(m.x) + 8, y: Y(m.y) - 8, 'font-size': 11, fill: '#111827'})).textContent = m.label;
    });
    box.appendChild(legend);
    var tip = el('div', {cls: 'tip'});
    box.appendChild(tip);
    svg.addEventListener('mousemove', function (ev) {
      var r = svg.getBoundingClientRect(), sx = W / r.width;
      var mx = (ev.clientX - r.left) * sx, my = (ev.clientY - r.top) * sx, best = null, bd = 1e9;
      for (var i = 0; i < hits.length; i++) {
        var dx = hits[i][0] - mx, dy = hits[i][1] - my, dd = dx * dx + dy * dy;
        if (dd < bd) { bd = dd; best = hits[i]; }
      }
      if (!best || bd > 900) { tip.style.display = 'none'; return; }
      tip.textContent = best[2] + ': ' + (o.xname || 'x') + ' ' + fmt(best[3][0]) + ', ' + (o.yname || 'y') + ' ' + fmt(best[3][1]);
      tip.style.display = 'block';
      tip.style.left = (best[0] / sx + 10) + 'px';
      tip.style.top = (best[1] / sx + 16) + 'px';
    });
    svg.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    return box;
  }

  /* bars({title, cats:[..], series:[{name, vals:[..], errs:[..]}], ylabel, ymax}) — grouped bars with error bars */
  function bars(o) {
    var W = 520, H = o.height || 250, ml = 48, mr = 10, mt = 10, mb = 56;
    var box = el('div', {cls: 'chart'}, el('div', {cls: 'ct', text: o.title}));
    var n = 0, hi = o.ymax || 0;
    o.series.forEach(function (s) {
      s.vals.forEach(function (v, i) {
        if (v != null) { n++; hi = Math.max(hi, v + ((s.errs && s.errs[i]) || 0)); }
      });
    });
    var svg = sv('svg', {viewBox: '0 0 ' + W + ' ' + H, 'data-n': n, role: 'img', 'aria-label': o.title});
    box.setAttribute('data-n', n);
    box.appendChild(svg);
    if (!n) return box;
    hi = hi || 1;
    var Y = function (v) { return H - mb - v / hi * (H - mt - mb); };
    var ax = sv('g', {'class': 'axis'});
    niceTicks(0, hi, 5).forEach(function (t) {
      ax.appendChild(sv('line', {x1: ml, x2: W - mr, y1: Y(t), y2: Y(t), 'class': 'gridl'}));
      ax.appendChild(sv('text', {x: ml - 4, y: Y(t) + 3, 'text-anchor': 'end'})).textContent = (o.yfmt || tickFmt)(t);
    });
    if (o.ylabel) ax.appendChild(sv('text', {x: 11, y: (mt + H - mb) / 2, 'text-anchor': 'middle',
      transform: 'rotate(-90 11 ' + ((mt + H - mb) / 2) + ')'})).textContent = o.ylabel;
    svg.appendChild(ax);
    var gw = (W - ml - mr) / o.cats.length, bw = Math.min(46, gw * 0.8 / o.series.length);
    var tip = el('div', {cls: 'tip'});
    o.cats.forEach(function (c, ci) {
      var gx = ml + ci * gw + (gw - bw * o.series.length) / 2;
      var lab = svg.appendChild(sv('text', {x: ml + ci * gw + gw / 2, y: H - mb + 14, 'text-anchor': 'middle', 'font-size': 10, fill: '#334155'}));
      lab.textContent = c.length > 22 ? c.slice(0, 21) + '…' : c;
      o.series.forEach(function (s, si) {
        var v = s.vals[ci];
        if (v == null) return;
        var color = s.color || PALETTE[si % PALETTE.length], x = gx + si * bw;
        var r = svg.appendChild(sv('rect', {x: x + 1, y: Y(v), width: bw - 2, height: Math.max(0.5, Y(0) - Y(v)), fill: color, 'fill-opacity': 0.8}));
        var e = s.errs && s.errs[ci];
        if (e) {
          var cx = x + bw / 2;
          svg.appendChild(sv('path', {d: 'M' + cx + ',' + Y(Math.max(0, v - e)) + 'V' + Y(v + e) + 'M' + (cx - 4) + ',' + Y(v + e) + 'h8M' + (cx - 4) + ',' + Y(Math.max(0, v - e)) + 'h8', stroke: '#111827', 'stroke-width': 1.2, fill: 'none'}));
        }
        r.addEventListener('mousemove', function (ev) {
          var rr = box.getBoundingClientRect();
          tip.textContent = c + ' / ' + s.name + ': ' + fmt(v) + (e ? ' ± ' + fmt(e) : '');
          tip.style.display = 'block';
          tip.style.left = (ev.clientX - rr.left + 10) + 'px';
          tip.style.top = (ev.clientY - rr.top + 10) + 'px';
        });
        r.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
      });
    });
    if (o.series.length > 1) {
      var legend = el('div', {cls: 'legend'});
      o.series.forEach(function (s, si) {
        legend.appendChild(el('span', null, el('i', {style: 'background:' + (s.color || PALETTE[si % PALETTE.length])}), s.name));
      });
      box.appendChild(legend);
    }
    box.appendChild(tip);
    return box;
  }

  // ---- generic tables --------------------------------------------------------------------------------
  /* Every scalar of every stage, one row per dotted key: fields added to summary.json show up unchanged. */
  function stageFieldTable(stages, skip) {
    var flat = stages.map(function (s) {
      var c = {};
      Object.keys(s).forEach(function (k) { if (skip.indexOf(k) < 0) c[k] = s[k]; });
      return flatten(c, '');
    });
    var keys = [];
    flat.forEach(function (f) { Object.keys(f).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
    var t = el('table', {cls: 'fields'});
    t.appendChild(el('thead', null, el('tr', null, el('th', {cls: 'l', text: 'field'}),
      stages.map(function (s) { return el('th', {text: 'stage ' + s.stage}); }))));
    var tb = el('tbody');
    keys.forEach(function (k) {
      tb.appendChild(el('tr', null, el('td', {cls: 'l', text: k}), flat.map(function (f, i) {
        var v = f[k];
        if (Array.isArray(v)) v = v.length ? JSON.stringify(v) : '[]';
        return numCell(v, 'stages.' + i + '.' + k, typeof v === 'string' ? 'l' : null);
      })));
    });
    t.appendChild(tb);
    return t;
  }
  function kvTable(obj, prefix) {
    var f = flatten(obj || {}, '');
    var t = el('table'), tb = el('tbody');
    Object.keys(f).forEach(function (k) {
      var v = f[k];
      if (Array.isArray(v)) v = JSON.stringify(v);
      tb.appendChild(el('tr', null, el('td', {cls: 'l', text: k}), numCell(v, prefix ? prefix + '.' + k : k, 'l')));
    });
    t.appendChild(tb);
    return t;
  }
  function rowsTable(cols, rows) {
    var t = el('table');
    t.appendChild(el('thead', null, el('tr', null, cols.map(function (c) { return el('th', {cls: c.l ? 'l' : null, text: c.t}); }))));
    var tb = el('tbody');
    rows.forEach(function (r) { tb.appendChild(r); });
    t.appendChild(tb);
    return t;
  }

  // ---- perf ------------------------------------------------------------------------------------------
  var LAT = ['ttft', 'ttfo', 'tpot', 'itl', 'icl', 'e2e_latency', 'queue_time', 'latency_from_schedule'];
  var STATS = ['mean', 'min', 'p50', 'p90', 'p95', 'p99', 'p999', 'max', 'count'];
  var CDF_LABEL = {ttft: 'TTFT', tpot: 'TPOT', itl: 'ITL', e2e_latency: 'E2E latency'};

  function header(m, extra) {
    var h = el('header', {cls: 'top'});
    h.appendChild(el('h1', null, 'evalscope ' + m.kind + ' report ', badge(m.status)));
    h.appendChild(el('div', {cls: 'meta'}, extra));
    if (APP) h.appendChild(el('div', {cls: 'meta'}, el('a', {href: './', text: '← all runs'}),
      m.status === 'running' ? ' · following this run live (refreshes every 2 s)' : ''));
    return h;
  }

  function renderPerf(root, m) {
    var s = m.summary || {}, man = m.manifest || {}, t = m.target || {};
    var trust = s.trustworthy != null ? s.trustworthy : man.trustworthy;
    root.appendChild(header(m, [
      'run ', el('b', {text: m.run_id}), ' · target ', t.url || '?', ' · model ', t.model || '?',
      ' · started ', s.started_at || man.started_at || '?', ' · elapsed ', fmt(s.elapsed_s || man.elapsed_s), ' s',
      (s.stop_reason || man.stop_reason) ? ' · stop reason: ' + (s.stop_reason || man.stop_reason) : '',
      ' · client ', trust == null ? badge('unknown') : badge(trust ? 'trustworthy' : 'bad')]));
    var main = el('main');
    root.appendChild(main);
    main.appendChild(el('nav', {cls: 'toc'}, [['tables', 'Stages'], ['cdf', 'Latency CDFs'], ['timeline', 'Timeline'],
      ['sweep', 'Throughput vs latency'], ['errors', 'Errors'], ['fidelity', 'Client fidelity'],
      ['server', 'Server metrics'], ['requests', 'Requests'], ['config', 'Config']].map(function (x) {
      return el('a', {href: '#' + x[0], text: x[1]});
    })));
    var stages = m.stages || [];
    // stage tables
    var sec = section('tables', 'Per-stage results');
    sec.appendChild(el('p', {cls: 'note', text: 'Source: ' + m.stages_source + '. ' + m.records + ' records in records.jsonl' +
      (m.bad_lines ? ' (' + m.bad_lines + ' unreadable lines skipped)' : '') + '.'}));
    sec.appendChild(el('h3', {text: 'Throughput'}));
    sec.appendChild(rowsTable([{t: 'stage'}, {t: 'parallel'}, {t: 'rate'}, {t: 'sent'}, {t: 'ok'}, {t: 'failed'}, {t: 'cancelled'},
      {t: 'error rate'}, {t: 'duration s'}, {t: 'req/s'}, {t: 'out tok/s'}, {t: 'total tok/s'}], stages.map(function (st, i) {
      var p = 'stages.' + i + '.';
      return el('tr', null, numCell(st.stage), numCell(st.parallel, p + 'parallel'), numCell(st.rate, p + 'rate'),
        numCell(get(st, 'requests.sent'), p + 'requests.sent'), numCell(get(st, 'requests.succeeded'), p + 'requests.succeeded'),
        numCell(get(st, 'requests.failed'), p + 'requests.failed'), numCell(get(st, 'requests.cancelled'), p + 'requests.cancelled'),
        numCell(get(st, 'requests.error_rate'), p + 'requests.error_rate'), numCell(st.duration_s, p + 'duration_s'),
        numCell(get(st, 'throughput.requests_per_s'), p + 'throughput.requests_per_s'),
        numCell(get(st, 'throughput.output_tokens_per_s'), p + 'throughput.output_tokens_per_s'),
        numCell(get(st, 'throughput.total_tokens_per_s'), p + 'throughput.total_tokens_per_s'));
    })));
    sec.appendChild(el('h3', {text: 'Latency (ms)'}));
    var lrows = [];
    stages.forEach(function (st, i) {
      var names = LAT.filter(function (k) { return st[k]; });
      Object.keys(st).forEach(function (k) {  // latency-like objects added later (e.g. server-side) show too
        if (names.indexOf(k) < 0 && st[k] && typeof st[k] === 'object' && 'p50' in st[k] && 'mean' in st[k]) names.push(k);
      });
      names.forEach(function (k) {
        lrows.push(el('tr', null, numCell(st.stage), el('td', {cls: 'l', text: k}), STATS.map(function (x) {
          return numCell(st[k][x], 'stages.' + i + '.' + k + '.' + x);
        })));
      });
    });
    sec.appendChild(rowsTable([{t: 'stage'}, {t: 'metric', l: 1}].concat(STATS.map(function (x) { return {t: x}; })), lrows));
    var all = el('details', null, el('summary', {text: 'Every field of every stage (summary.json)'}));
    all.appendChild(stageFieldTable(stages, ['timeline', 'errors']));
    sec.appendChild(all);
    main.appendChild(sec);

    // CDFs
    sec = section('cdf', 'Latency distributions (CDF)');
    sec.appendChild(el('p', {cls: 'note', text: 'From ' + m.cdf_source + '; x axis logarithmic. One line per stage.'}));
    var g = el('div', {cls: 'grid'});
    Object.keys(CDF_LABEL).forEach(function (k) {
      var per = (m.cdf || {})[k] || {};
      g.appendChild(chart({title: CDF_LABEL[k] + ' (ms)', xlog: true, xlabel: 'ms', ylabel: 'fraction of requests', ymax: 1,
        xname: 'ms', yname: 'fraction', series: Object.keys(per).map(function (st) {
          return {name: 'stage ' + st, pts: per[st], mode: 'step'};
        }), empty: 'no ' + CDF_LABEL[k] + ' samples'}));
    });
    sec.appendChild(g);
    main.appendChild(sec);

    // timeline
    var tl = m.timeline || {t: []};
    sec = section('timeline', 'Timeline');
    sec.appendChild(el('p', {cls: 'note', text: 'Bins of ' + tl.bin_s + ' s from the first request; dashed lines mark stage starts.'}));
    var vl = (tl.stage_starts || []).map(function (x) { return {x: x[1], label: 'stage ' + x[0]}; });
    var T = tl.t || [];
    function ser(name, arr) { return {name: name, pts: (arr || []).map(function (v, i) { return [T[i], v]; })}; }
    g = el('div', {cls: 'grid'});
    g.appendChild(chart({title: 'Requests in flight', xlabel: 's', ymin0: true, vlines: vl, xname: 's', yname: 'n',
      series: [ser('in flight', tl.in_flight)]}));
    g.appendChild(chart({title: 'Achieved rate (requests/s)', xlabel: 's', ymin0: true, vlines: vl, xname: 's', yname: 'req/s',
      series: [ser('sent', tl.sent_per_s), ser('completed', tl.completed_per_s), ser('failed', tl.failed_per_s)]}));
    g.appendChild(chart({title: 'Output tokens/s', xlabel: 's', ymin0: true, vlines: vl, xname: 's', yname: 'tok/s',
      series: [ser('output tokens/s', tl.output_tokens_per_s)]}));
    g.appendChild(chart({title: 'Mean TTFT over time (ms)', xlabel: 's', ymin0: true, vlines: vl, xname: 's', yname: 'ms',
      series: [ser('TTFT', tl.ttft_mean_ms)], empty: 'no TTFT over time (no records)'}));
    sec.appendChild(g);
    main.appendChild(sec);

    // sweep
    sec = section('sweep', 'Throughput against latency');
    if (stages.length >= 2) {
      var mk = function (path) {
        return stages.map(function (st) { return [get(st, 'throughput.output_tokens_per_s'), get(st, path)]; });
      };
      var marks = [];
      if (m.knee) {
        var ks = stages.filter(function (st) { return st.stage === m.knee.stage; })[0];
        if (ks) marks.push({x: get(ks, 'throughput.output_tokens_per_s'), y: get(ks, 'e2e_latency.p50'), label: 'knee (stage ' + ks.stage + ')'});
      }
      g = el('div', {cls: 'grid'});
      g.appendChild(chart({title: 'E2E latency vs output tokens/s', xlabel: 'output tokens/s', ylabel: 'ms', xname: 'tok/s', yname: 'ms',
        series: [{name: 'p50', pts: mk('e2e_latency.p50')}, {name: 'p99', pts: mk('e2e_latency.p99')}], marks: marks, ymin0: true}));
      g.appendChild(chart({title: 'TTFT vs output tokens/s', xlabel: 'output tokens/s', ylabel: 'ms', xname: 'tok/s', yname: 'ms',
        series: [{name: 'p50', pts: mk('ttft.p50')}, {name: 'p99', pts: mk('ttft.p99')}], ymin0: true}));
      sec.appendChild(g);
      sec.appendChild(el('p', {cls: 'note', text: m.knee ? 'Knee: stage ' + m.knee.stage + ' (' + m.knee.rule + ').' :
        'Knee: needs at least 3 stages.'}));
    } else {
      sec.appendChild(el('p', {cls: 'note', text: 'One stage only: run a sweep (e.g. --parallel 1 4 16 64) to see throughput against latency.'}));
    }
    ['sla', 'sweep', 'sla_probes'].forEach(function (k) {
      if (s[k]) { sec.appendChild(el('h3', {text: k})); sec.appendChild(kvTable(s[k], k)); }
    });
    main.appendChild(sec);

    // errors
    sec = section('errors', 'Errors');
    var erows = [];
    stages.forEach(function (st) {
      (st.errors || []).forEach(function (e) {
        erows.push(el('tr', null, numCell(st.stage), el('td', {cls: 'l', text: e.kind || ''}), numCell(e.http_status),
          numCell(e.count), el('td', {cls: 'wrap', text: e.example || e.message || e.pattern || JSON.stringify(e)})));
      });
    });
    if (erows.length) sec.appendChild(rowsTable([{t: 'stage'}, {t: 'kind', l: 1}, {t: 'http'}, {t: 'count'}, {t: 'message', l: 1}], erows));
    else sec.appendChild(el('p', {cls: 'note', text: 'No failed requests.'}));
    var eps = tl.errors_per_s || {};
    if (Object.keys(eps).length) {
      sec.appendChild(chart({title: 'Errors by kind over time (per s)', xlabel: 's', ymin0: true, vlines: vl, xname: 's', yname: '/s',
        series: Object.keys(eps).map(function (k) { return ser(k, eps[k]); })}));
    }
    main.appendChild(sec);

    // fidelity
    sec = section('fidelity', 'Client fidelity');
    sec.appendChild(el('p', null, 'Verdict: ', trust == null ? badge('unknown') : badge(trust ? 'trustworthy' : 'bad'),
      ' — can these latencies be trusted, or was the load generator itself the bottleneck?'));
    sec.appendChild(rowsTable([{t: 'stage'}, {t: 'verdict', l: 1}, {t: 'reason', l: 1}, {t: 'loop lag p99 ms'}, {t: 'CPU %'},
      {t: 'workers'}, {t: 'backend', l: 1}], stages.map(function (st, i) {
      var c = st.client || {};
      return el('tr', null, numCell(st.stage), el('td', {cls: 'l'}, c.trustworthy == null ? badge('unknown') : badge(c.trustworthy ? 'trustworthy' : 'bad')),
        el('td', {cls: 'wrap', text: c.reason || ''}), numCell(get(c, 'loop_lag_ms.p99'), 'stages.' + i + '.client.loop_lag_ms.p99'),
        numCell(c.cpu_percent, 'stages.' + i + '.client.cpu_percent'), numCell(c.workers), el('td', {cls: 'l', text: c.backend || ''}));
    })));
    main.appendChild(sec);

    // server metrics: whatever the summary holds under a server key, rendered generically
    sec = section('server', 'Server metrics');
    var found = false;
    Object.keys(s).forEach(function (k) {
      if (/server/i.test(k) && s[k] && typeof s[k] === 'object') { found = true; sec.appendChild(el('h3', {text: k})); sec.appendChild(kvTable(s[k], k)); }
    });
    stages.forEach(function (st, i) {
      Object.keys(st).forEach(function (k) {
        if (/server/i.test(k) && st[k] && typeof st[k] === 'object') {
          found = true; sec.appendChild(el('h3', {text: 'stage ' + st.stage + ': ' + k})); sec.appendChild(kvTable(st[k], 'stages.' + i + '.' + k));
        }
      });
    });
    if (!found) sec.appendChild(el('p', {cls: 'note', text: 'No server metrics were scraped in this run.'}));
    main.appendChild(sec);

    // requests
    sec = section('requests', 'Requests');
    main.appendChild(sec);
    renderRequests(sec, m);

    sec = section('config', 'Run configuration');
    sec.appendChild(el('details', null, el('summary', {text: 'manifest.json (secrets masked)'}), kvTable(man, 'manifest')));
    main.appendChild(sec);
  }

  var reqState = {status: '', stage: '', offset: 0};
  function renderRequests(sec, m) {
    var smp = m.samples || [];
    var pts = {ok: [], error: [], cancelled: []};
    smp.forEach(function (r) { if (r.e2e_ms != null && pts[r.status]) pts[r.status].push([r.t_s, r.e2e_ms]); });
    sec.appendChild(el('p', {cls: 'note', text: APP ? 'Scatter: a uniform sample of ' + smp.length + ' of ' + m.sample_of +
      ' requests. Table: every record, paged from records.jsonl.' : 'A uniform sample of ' + smp.length + ' of ' + m.sample_of +
      ' requests (the full records are in records.jsonl; `evalscope app` pages through all of them).'}));
    sec.appendChild(chart({title: 'E2E latency of each sampled request over time', xlabel: 's since start', ylabel: 'ms', xname: 's', yname: 'ms',
      series: [{name: 'ok', pts: pts.ok, mode: 'points', color: '#2563eb'}, {name: 'error', pts: pts.error, mode: 'points', color: '#dc2626'},
        {name: 'cancelled', pts: pts.cancelled, mode: 'points', color: '#94a3b8'}], ymin0: true, height: 220}));
    var stageSet = {};
    smp.forEach(function (r) { stageSet[r.stage] = 1; });
    (m.stages || []).forEach(function (s) { stageSet[s.stage] = 1; });
    var bar = el('div', {cls: 'filters'});
    var tableBox = el('div', {id: 'req-table'});
    ['', 'ok', 'error', 'cancelled'].forEach(function (st) {
      bar.appendChild(el('button', {cls: reqState.status === st ? 'on' : '', 'data-filter': st || 'all', text: st || 'all',
        onclick: function () { reqState.status = st; reqState.offset = 0; Array.prototype.forEach.call(bar.querySelectorAll('button'), function (b) { b.className = b === this ? 'on' : ''; }, this); draw(); }}));
    });
    var sel = el('select', {onchange: function () { reqState.stage = sel.value; reqState.offset = 0; draw(); }}, el('option', {value: '', text: 'all stages'}));
    Object.keys(stageSet).sort(function (a, b) { return a - b; }).forEach(function (s) { sel.appendChild(el('option', {value: s, text: 'stage ' + s})); });
    sel.value = reqState.stage;
    bar.appendChild(sel);
    sec.appendChild(bar);
    sec.appendChild(tableBox);
    var PAGE = 100;
    function table(rows, total) {
      tableBox.innerHTML = '';
      tableBox.appendChild(el('div', {cls: 'pager'}, el('span', {cls: 'count', text: String(total)}), ' matching · ',
        el('button', {text: '‹ prev', disabled: reqState.offset <= 0 ? 'disabled' : null, onclick: function () { reqState.offset = Math.max(0, reqState.offset - PAGE); draw(); }}),
        (total ? reqState.offset + 1 : 0) + '–' + Math.min(total, reqState.offset + PAGE),
        el('button', {text: 'next ›', disabled: reqState.offset + PAGE >= total ? 'disabled' : null, onclick: function () { reqState.offset += PAGE; draw(); }})));
      tableBox.appendChild(rowsTable([{t: 'id'}, {t: 'stage'}, {t: 'status', l: 1}, {t: 't s'}, {t: 'TTFT ms'}, {t: 'TPOT ms'}, {t: 'E2E ms'},
        {t: 'prompt tok'}, {t: 'out tok'}, {t: 'finish', l: 1}, {t: 'http'}, {t: 'error', l: 1}], rows.map(function (r) {
        return el('tr', null, numCell(r.id), numCell(r.stage), el('td', {cls: 'l'}, badge(r.status)), numCell(r.t_s), numCell(r.ttft_ms),
          numCell(r.tpot_ms), numCell(r.e2e_ms), numCell(r.prompt_tokens), numCell(r.completion_tokens), el('td', {cls: 'l', text: r.finish_reason || ''}),
          numCell(r.http_status), el('td', {cls: 'wrap', text: r.error || ''}));
      })));
    }
    function draw() {
      if (APP) {
        api('api/records?' + q({run: CFG.run, status: reqState.status, stage: reqState.stage, offset: reqState.offset, limit: PAGE}))
          .then(function (d) { table(d.rows, d.total); }, function (e) { tableBox.textContent = 'error: ' + e.message; });
        return;
      }
      var rows = smp.filter(function (r) {
        return (!reqState.status || r.status === reqState.status) && (reqState.stage === '' || String(r.stage) === reqState.stage);
      });
      table(rows.slice(reqState.offset, reqState.offset + PAGE), rows.length);
    }
    draw();
  }

  // ---- eval ------------------------------------------------------------------------------------------
  var FLAGS = ['correct', 'wrong', 'unparsed', 'errored', 'truncated'];
  var smpState = {flag: '', bench: '', subset: '', q: '', offset: 0, open: null};

  function renderEval(root, m) {
    var man = m.manifest || {};
    root.appendChild(header(m, ['run ', el('b', {text: m.run_id}), ' · model ', m.model || '?', ' · endpoint ', man.endpoint || '?',
      ' · benchmarks ', (m.benchmarks || []).map(function (b) { return b.name; }).join(', ')]));
    var main = el('main');
    root.appendChild(main);
    main.appendChild(el('nav', {cls: 'toc'}, [['scores', 'Scores'], ['rates', 'Unparsed / truncated / errored'], ['samples', 'Samples'],
      ['performance', 'Endpoint performance'], ['config', 'Config']].map(function (x) { return el('a', {href: '#' + x[0], text: x[1]}); })));
    var B = m.benchmarks || [];
    var sec = section('scores', 'Scores');
    var rows = [];
    B.forEach(function (b, i) {
      var p = 'benchmarks.' + i + '.';
      rows.push(el('tr', null, el('td', {cls: 'l'}, el('b', {text: b.name})), el('td', {cls: 'l', text: b.metric}),
        pctCell(b.score, p + 'score'), pctCell(b.stderr, p + 'stderr'), numCell(b.num_samples, p + 'num_samples'),
        pctCell(b.unparsed_rate, p + 'unparsed_rate'), pctCell(b.truncated_rate, p + 'truncated_rate'), numCell(b.errored, p + 'errored'),
        el('td', {cls: 'l', text: b.source})));
      if ((b.subsets || []).length > 1) b.subsets.forEach(function (sb, j) {
        var sp = p + 'subsets.' + j + '.';
        rows.push(el('tr', {cls: 'sub'}, el('td', {cls: 'l', text: sb.name}), el('td'), pctCell(sb.score, sp + 'score'),
          pctCell(sb.stderr, sp + 'stderr'), numCell(sb.num_samples, sp + 'num_samples'), el('td'), el('td'), el('td'), el('td')));
      });
    });
    sec.appendChild(rowsTable([{t: 'benchmark / subset', l: 1}, {t: 'metric', l: 1}, {t: 'score %'}, {t: '± stderr'}, {t: 'n'},
      {t: 'unparsed %'}, {t: 'truncated %'}, {t: 'errored'}, {t: 'source', l: 1}], rows));
    var g = el('div', {cls: 'grid'});
    g.appendChild(bars({title: 'Score per benchmark (%, ± 1 standard error)', cats: B.map(function (b) { return b.name; }), ylabel: '%', ymax: 100,
      series: [{name: m.model || 'score', vals: B.map(function (b) { return b.score == null ? null : b.score * 100; }),
        errs: B.map(function (b) { return b.stderr == null ? 0 : b.stderr * 100; })}]}));
    B.forEach(function (b) {
      if ((b.subsets || []).length > 1) g.appendChild(bars({title: b.name + ': score per subset (%, ± 1 s.e.)', cats: b.subsets.map(function (s) { return s.name; }),
        ylabel: '%', ymax: 100, series: [{name: b.name, vals: b.subsets.map(function (s) { return s.score == null ? null : s.score * 100; }),
          errs: b.subsets.map(function (s) { return s.stderr == null ? 0 : s.stderr * 100; })}]}));
    });
    sec.appendChild(g);
    main.appendChild(sec);

    sec = section('rates', 'Unparsed, truncated and errored');
    sec.appendChild(bars({title: 'Rates per benchmark (%)', cats: B.map(function (b) { return b.name; }), ylabel: '%', ymax: 1,
      series: [{name: 'unparsed', vals: B.map(function (b) { return (b.unparsed_rate || 0) * 100; })},
        {name: 'truncated', vals: B.map(function (b) { return (b.truncated_rate || 0) * 100; })},
        {name: 'errored', vals: B.map(function (b) { return (b.errored_rate || 0) * 100; })}]}));
    B.forEach(function (b) {
      if (b.errors && Object.keys(b.errors).length) { sec.appendChild(el('h3', {text: b.name + ': errors by kind'})); sec.appendChild(kvTable(b.errors, 'benchmarks.' + b.name + '.errors')); }
    });
    main.appendChild(sec);

    sec = section('samples', 'Samples');
    main.appendChild(sec);
    renderSamples(sec, m);

    sec = section('performance', 'Endpoint performance during the eval');
    var pd = m.perf_detail || {};
    if (m.performance) sec.appendChild(kvTable(m.performance, 'performance'));
    g = el('div', {cls: 'grid'});
    g.appendChild(chart({title: 'Latency CDF (ms, requests sent in this run)', xlog: true, xlabel: 'ms', ylabel: 'fraction', ymax: 1, xname: 'ms', yname: 'fraction',
      series: [{name: 'TTFT', pts: get(pd, 'cdf.ttft') || [], mode: 'step'}, {name: 'latency', pts: get(pd, 'cdf.latency') || [], mode: 'step'}]}));
    var tl = pd.timeline || {t: []};
    g.appendChild(chart({title: 'Samples completed per second', xlabel: 's', ymin0: true, xname: 's', yname: '/s',
      series: [{name: 'completed', pts: (tl.completed_per_s || []).map(function (v, i) { return [tl.t[i], v]; })}]}));
    sec.appendChild(g);
    main.appendChild(sec);
    sec = section('config', 'Run configuration');
    sec.appendChild(el('details', null, el('summary', {text: 'manifest.json (secrets masked)'}), kvTable(man, 'manifest')));
    main.appendChild(sec);
  }
  function pctCell(v, key) {
    var td = el('td', {text: pct(v)});
    td.setAttribute('data-k', key);
    if (typeof v === 'number') { td.setAttribute('data-v', String(v)); td.setAttribute('data-pct', '1'); }
    return td;
  }

  function matchSample(s) {
    if (smpState.flag && s.flags.indexOf(smpState.flag) < 0) return false;
    if (smpState.bench && s.benchmark !== smpState.bench) return false;
    if (smpState.subset && s.subset !== smpState.subset) return false;
    if (smpState.q) {
      var t = smpState.q.toLowerCase();
      var hay = [s.id, s.prompt, s.output, s.reasoning, s.extracted, s.gold].join('\n').toLowerCase();
      if (hay.indexOf(t) < 0) return false;
    }
    return true;
  }

  function renderSamples(sec, m) {
    var S = m.samples || [];
    var B = m.benchmarks || [];
    if (!APP && !m.samples_embedded_all) sec.appendChild(el('p', {cls: 'note', text: S.length + ' of ' + m.samples_total +
      ' samples are embedded (size budget); open the run in `evalscope app` to browse all of them.'}));
    var bar = el('div', {cls: 'filters'});
    var counts = {};
    B.forEach(function (b) { FLAGS.forEach(function (f) { counts[f] = (counts[f] || 0) + ((b.counts || {})[f] || 0); }); });
    var total = B.reduce(function (a, b) { return a + (b.journal_entries || 0); }, 0);
    [''].concat(FLAGS).forEach(function (f) {
      bar.appendChild(el('button', {cls: smpState.flag === f ? 'on' : '', 'data-filter': f || 'all',
        text: (f || 'all') + ' (' + (f ? counts[f] || 0 : total) + ')', onclick: function (ev) {
          smpState.flag = f; smpState.offset = 0;
          Array.prototype.forEach.call(bar.querySelectorAll('button'), function (b) { b.className = b === ev.currentTarget ? 'on' : ''; });
          draw();
        }}));
    });
    var bsel = el('select', {id: 'f-bench'}, el('option', {value: '', text: 'all benchmarks'}));
    B.forEach(function (b) { bsel.appendChild(el('option', {value: b.name, text: b.name})); });
    var ssel = el('select', {id: 'f-subset'});
    function fillSubsets() {
      ssel.innerHTML = '';
      ssel.appendChild(el('option', {value: '', text: 'all subsets'}));
      var seen = {};
      B.forEach(function (b) {
        if (smpState.bench && b.name !== smpState.bench) return;
        (b.subsets || []).forEach(function (s) { if (!seen[s.name]) { seen[s.name] = 1; ssel.appendChild(el('option', {value: s.name, text: s.name})); } });
      });
      ssel.value = smpState.subset;
    }
    bsel.value = smpState.bench;
    fillSubsets();
    bsel.addEventListener('change', function () { smpState.bench = bsel.value; smpState.subset = ''; smpState.offset = 0; fillSubsets(); draw(); });
    ssel.addEventListener('change', function () { smpState.subset = ssel.value; smpState.offset = 0; draw(); });
    var search = el('input', {id: 'f-q', type: 'search', placeholder: 'search prompt / output / answer', size: 32, value: smpState.q});
    var timer = null;
    search.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () { smpState.q = search.value; smpState.offset = 0; draw(); }, 200);
    });
    bar.appendChild(bsel); bar.appendChild(ssel); bar.appendChild(search);
    sec.appendChild(bar);
    var box = el('div', {id: 'sample-list'}), detail = el('div', {id: 'sample-detail'});
    sec.appendChild(box);
    sec.appendChild(detail);
    var PAGE = 50;
    function show(s) {
      detail.innerHTML = '';
      if (!s) return;
      var d = el('div', {cls: 'sample'});
      d.appendChild(el('div', null, el('b', {text: s.benchmark + ' / ' + s.id}), ' repeat ' + s.repeat + ' · subset ' + (s.subset || '–') + ' · ',
        s.flags.map(function (f) { return [badge(f), ' ']; }), ' score ' + fmt(s.score) + (s.latency_s != null ? ' · latency ' + fmt(s.latency_s) + ' s' : '') +
        (s.finish_reason ? ' · finish ' + s.finish_reason : '')));
      [['prompt', s.prompt], ['raw output', s.output], ['reasoning', s.reasoning], ['extracted answer', s.extracted], ['gold answer', s.gold],
        ['error', s.error]].forEach(function (kv) {
        if (kv[1] == null || kv[1] === '') return;
        d.appendChild(el('div', {cls: 'k', text: kv[0]}));
        d.appendChild(el('pre', {cls: 'f-' + kv[0].split(' ')[0], text: kv[1]}));
      });
      detail.appendChild(d);
    }
    function list(rows, n) {
      box.innerHTML = '';
      box.appendChild(el('div', {cls: 'pager'}, el('span', {cls: 'count', id: 'sample-count', text: String(n)}), ' matching · ',
        el('button', {text: '‹ prev', disabled: smpState.offset <= 0 ? 'disabled' : null, onclick: function () { smpState.offset = Math.max(0, smpState.offset - PAGE); draw(); }}),
        (n ? smpState.offset + 1 : 0) + '–' + Math.min(n, smpState.offset + PAGE),
        el('button', {text: 'next ›', disabled: smpState.offset + PAGE >= n ? 'disabled' : null, onclick: function () { smpState.offset += PAGE; draw(); }})));
      box.appendChild(rowsTable([{t: 'benchmark', l: 1}, {t: 'id', l: 1}, {t: 'subset', l: 1}, {t: 'score'}, {t: 'extracted', l: 1}, {t: 'gold', l: 1},
        {t: 'flags', l: 1}], rows.map(function (s) {
        var key = s.benchmark + '/' + s.id + '/' + s.repeat;
        var tr = el('tr', {cls: 'pick' + (smpState.open === key ? ' sel' : ''), onclick: function () {
          smpState.open = key;
          Array.prototype.forEach.call(box.querySelectorAll('tr.sel'), function (x) { x.classList.remove('sel'); });
          tr.classList.add('sel');
          show(s);
        }}, el('td', {cls: 'l', text: s.benchmark}), el('td', {cls: 'l', text: s.id}), el('td', {cls: 'l', text: s.subset || ''}), numCell(s.score),
          el('td', {cls: 'wrap', text: String(s.extracted == null ? '' : s.extracted).slice(0, 80)}),
          el('td', {cls: 'wrap', text: String(s.gold == null ? '' : s.gold).slice(0, 80)}), el('td', {cls: 'l'}, s.flags.map(function (f) { return [badge(f), ' ']; })));
        if (smpState.open === key) show(s);
        return tr;
      })));
    }
    function draw() {
      if (APP) {
        api('api/samples?' + q({run: CFG.run, flag: smpState.flag, benchmark: smpState.bench, subset: smpState.subset, q: smpState.q,
          offset: smpState.offset, limit: PAGE})).then(function (d) { list(d.rows, d.total); }, function (e) { box.textContent = 'error: ' + e.message; });
        return;
      }
      var rows = S.filter(matchSample);
      list(rows.slice(smpState.offset, smpState.offset + PAGE), rows.length);
    }
    draw();
  }

  // ---- app pages -------------------------------------------------------------------------------------
  function renderRuns(root) {
    root.appendChild(el('header', {cls: 'top'}, el('h1', {text: 'evalscope runs'}), el('div', {cls: 'meta', text: CFG.outputs || ''})));
    var main = el('main');
    root.appendChild(main);
    var chosen = {};
    var btn = el('button', {id: 'compare', text: 'Compare selected (2–3)', disabled: 'disabled', onclick: function () {
      location.href = 'compare?' + q({runs: Object.keys(chosen).join(',')});
    }});
    main.appendChild(el('div', {cls: 'filters'}, btn));
    var box = el('div', {id: 'runs'});
    main.appendChild(box);
    function draw() {
      api('api/runs').then(function (runs) {
        box.innerHTML = '';
        box.appendChild(rowsTable([{t: ''}, {t: 'run', l: 1}, {t: 'kind', l: 1}, {t: 'status', l: 1}, {t: 'started', l: 1}, {t: 'model', l: 1},
          {t: 'datasets / records', l: 1}, {t: 'data MB'}], runs.map(function (r) {
          var cb = el('input', {type: 'checkbox', 'data-run': r.id, onchange: function () {
            if (cb.checked) chosen[r.id] = 1; else delete chosen[r.id];
            var n = Object.keys(chosen).length;
            if (n >= 2 && n <= 3) btn.removeAttribute('disabled'); else btn.setAttribute('disabled', 'disabled');
          }});
          if (chosen[r.id]) cb.checked = true;
          return el('tr', {'data-run': r.id}, el('td', null, cb), el('td', {cls: 'l'}, el('a', {href: 'run?' + q({id: r.id}), text: r.id})),
            el('td', {cls: 'l', text: r.kind}), el('td', {cls: 'l'}, badge(r.status)), el('td', {cls: 'l', text: r.started || ''}),
            el('td', {cls: 'l', text: r.model || ''}), el('td', {cls: 'l', text: r.datasets ? r.datasets.join(', ') : (r.records == null ? '' : r.records + ' records')}),
            numCell(+(r.data_bytes / 1e6).toFixed(2)));
        })));
      }, function (e) { box.textContent = 'error: ' + e.message; });
    }
    draw();
    setInterval(draw, 5000);
  }

  function renderCompare(root) {
    var ids = CFG.runs || [];
    root.appendChild(el('header', {cls: 'top'}, el('h1', {text: 'Compare ' + ids.length + ' runs'}),
      el('div', {cls: 'meta'}, el('a', {href: './', text: '← all runs'}), ' · ', ids.join(' · '))));
    var main = el('main');
    root.appendChild(main);
    Promise.all(ids.map(function (id) { return api('api/model?' + q({run: id})); })).then(function (ms) {
      var kinds = ms.map(function (m) { return m.kind; });
      if (kinds.some(function (k) { return k !== kinds[0]; })) {
        main.appendChild(el('p', {text: 'These runs are of different kinds (' + kinds.join(', ') + '): compare perf with perf, eval with eval.'}));
        return;
      }
      if (kinds[0] === 'perf') comparePerf(main, ids, ms); else compareEval(main, ids, ms);
    }, function (e) { main.textContent = 'error: ' + e.message; });
  }
  function comparePerf(main, ids, ms) {
    var sec = section('cmp-tables', 'Per-stage results side by side');
    var cols = [['throughput.requests_per_s', 'req/s'], ['throughput.output_tokens_per_s', 'out tok/s'], ['requests.error_rate', 'error rate'],
      ['ttft.p50', 'TTFT p50'], ['ttft.p99', 'TTFT p99'], ['tpot.p50', 'TPOT p50'], ['itl.p99', 'ITL p99'], ['e2e_latency.p50', 'E2E p50'], ['e2e_latency.p99', 'E2E p99']];
    var rows = [];
    ms.forEach(function (m, ri) {
      (m.stages || []).forEach(function (st, si) {
        rows.push(el('tr', null, el('td', {cls: 'l', text: ids[ri]}), numCell(st.stage), numCell(st.parallel), cols.map(function (c) {
          return numCell(get(st, c[0]), 'runs.' + ri + '.stages.' + si + '.' + c[0]);
        })));
      });
    });
    sec.appendChild(rowsTable([{t: 'run', l: 1}, {t: 'stage'}, {t: 'parallel'}].concat(cols.map(function (c) { return {t: c[1]}; })), rows));
    main.appendChild(sec);
    sec = section('cmp-cdf', 'Latency distributions overlaid');
    var g = el('div', {cls: 'grid'});
    Object.keys(CDF_LABEL).forEach(function (k) {
      var series = [];
      ms.forEach(function (m, ri) {
        var per = (m.cdf || {})[k] || {};
        Object.keys(per).forEach(function (st) { series.push({name: ids[ri] + (Object.keys(per).length > 1 ? ' s' + st : ''), pts: per[st], mode: 'step', color: PALETTE[ri]}); });
      });
      g.appendChild(chart({title: CDF_LABEL[k] + ' (ms)', xlog: true, xlabel: 'ms', ylabel: 'fraction', ymax: 1, series: series, xname: 'ms', yname: 'fraction'}));
    });
    g.appendChild(chart({title: 'Output tokens/s over time', xlabel: 's', ymin0: true, series: ms.map(function (m, ri) {
      var tl = m.timeline || {t: []};
      return {name: ids[ri], pts: (tl.output_tokens_per_s || []).map(function (v, i) { return [tl.t[i], v]; }), color: PALETTE[ri]};
    })}));
    sec.appendChild(g);
    main.appendChild(sec);
  }
  function compareEval(main, ids, ms) {
    var names = [];
    ms.forEach(function (m) { (m.benchmarks || []).forEach(function (b) { if (names.indexOf(b.name) < 0) names.push(b.name); }); });
    function bench(m, n) { return (m.benchmarks || []).filter(function (b) { return b.name === n; })[0] || {}; }
    var sec = section('cmp-scores', 'Scores side by side');
    sec.appendChild(rowsTable([{t: 'benchmark', l: 1}].concat(ids.map(function (id) { return {t: id + ' score % ± s.e.'}; })), names.map(function (n, bi) {
      return el('tr', null, el('td', {cls: 'l', text: n}), ms.map(function (m, ri) {
        var b = bench(m, n);
        var td = el('td', {text: b.score == null ? '–' : pct(b.score) + ' ± ' + pct(b.stderr)});
        td.setAttribute('data-k', 'runs.' + ri + '.' + n + '.score');
        if (b.score != null) td.setAttribute('data-v', String(b.score));
        return td;
      }));
    })));
    sec.appendChild(bars({title: 'Score per benchmark (%, ± 1 s.e.)', cats: names, ylabel: '%', ymax: 100, series: ms.map(function (m, ri) {
      return {name: ids[ri] + (m.model ? ' (' + m.model + ')' : ''), vals: names.map(function (n) { var b = bench(m, n); return b.score == null ? null : b.score * 100; }),
        errs: names.map(function (n) { var b = bench(m, n); return b.stderr ? b.stderr * 100 : 0; })};
    })}));
    main.appendChild(sec);
    sec = section('cmp-diff', 'Per-sample differences');
    var bsel = el('select', null, names.map(function (n) { return el('option', {value: n, text: n}); }));
    var box = el('div', {id: 'diff'});
    var off = 0;
    function draw() {
      api('api/sample_diff?' + q({runs: ids.join(','), benchmark: bsel.value, offset: off, limit: 50})).then(function (d) {
        box.innerHTML = '';
        box.appendChild(el('div', {cls: 'pager'}, el('span', {cls: 'count', id: 'diff-count', text: String(d.total)}),
          ' samples scored differently (of ' + d.common + ' in every run) · ',
          el('button', {text: '‹ prev', disabled: off <= 0 ? 'disabled' : null, onclick: function () { off = Math.max(0, off - 50); draw(); }}),
          el('button', {text: 'next ›', disabled: off + 50 >= d.total ? 'disabled' : null, onclick: function () { off += 50; draw(); }})));
        box.appendChild(rowsTable([{t: 'id', l: 1}, {t: 'subset', l: 1}, {t: 'gold', l: 1}].concat(ids.map(function (id) { return {t: id, l: 1}; })), d.rows.map(function (r) {
          return el('tr', null, el('td', {cls: 'l', text: r.id}), el('td', {cls: 'l', text: r.subset || ''}), el('td', {cls: 'wrap', text: String(r.gold == null ? '' : r.gold).slice(0, 60)}),
            r.runs.map(function (x) { return el('td', {cls: 'wrap', text: x == null ? '(missing)' : fmt(x.score) + ' · ' + String(x.extracted == null ? '–' : x.extracted).slice(0, 60)}); }));
        })));
      }, function (e) { box.textContent = 'error: ' + e.message; });
    }
    bsel.addEventListener('change', function () { off = 0; draw(); });
    sec.appendChild(el('div', {cls: 'filters'}, 'benchmark ', bsel));
    sec.appendChild(box);
    main.appendChild(sec);
    if (names.length) draw();
  }

  // ---- entry -----------------------------------------------------------------------------------------
  function renderModel(root, m) {
    root.innerHTML = '';
    document.title = 'evalscope ' + m.kind + ' · ' + m.run_id;
    if (m.kind === 'perf') renderPerf(root, m);
    else if (m.kind === 'eval') renderEval(root, m);
    else root.appendChild(el('p', {text: 'No view for runs of kind ' + m.kind + ' yet.'}));
    root.setAttribute('data-ready', '1');
  }
  function start() {
    var root = document.getElementById('app');
    root.innerHTML = '';
    if (!APP) {
      renderModel(root, JSON.parse(document.getElementById('report-data').textContent));
      return;
    }
    if (CFG.page === 'runs') { renderRuns(root); root.setAttribute('data-ready', '1'); return; }
    if (CFG.page === 'compare') { renderCompare(root); root.setAttribute('data-ready', '1'); return; }
    var last = null;
    function load() {
      api('api/model?' + q({run: CFG.run})).then(function (m) {
        var sig = JSON.stringify([m.status, m.records, m.samples_total, m.progress]);
        if (sig !== last) {
          var y = window.scrollY;
          renderModel(root, m);
          window.scrollTo(0, y);
          last = sig;
        }
        root.setAttribute('data-records', String(m.records != null ? m.records : m.samples_total));
        if (m.status === 'running' || (m.progress && !m.progress.done)) setTimeout(load, 2000);
      }, function (e) { root.textContent = 'error: ' + e.message; });
    }
    load();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
