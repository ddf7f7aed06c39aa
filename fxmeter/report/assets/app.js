/* fxmeter report.html: draws the treemap, the charts and the module table from the inlined data.
 * The numbers were computed by fxmeter (Python); this script only lays them out, formats them and filters.
 * window.fxmeter exposes the charts and the page state (used by the browser test). */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('fxmeter-data').textContent);
  var FX = window.fxmeter = { data: D, charts: {}, ready: false, state: { metric: 0, unfold: false } };

  // -- units (the same rules as fxmeter.report.html: three significant digits) --
  var PREFIX = ['', 'k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
  var BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];
  function three(v) { return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0); }
  function si(n, unit) {
    unit = unit || '';
    if (n === null || n === undefined) return '—';
    if (!isFinite(n)) return String(n) + ' ' + unit;
    var a = Math.abs(n), i = 0;
    if (a < 1000) return (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toPrecision(3)) + (unit ? ' ' + unit : '');
    while (a >= 999.5 && i < PREFIX.length - 1) { a /= 1000; i++; }
    return (n < 0 ? '-' : '') + three(a) + ' ' + PREFIX[i] + unit;
  }
  function siBytes(n) {
    if (n === null || n === undefined) return '—';
    var a = Math.abs(n), i = 0;
    if (a < 1024) return n.toLocaleString('en-US') + ' B';
    while (a >= 999.5 && i < BINARY.length - 1) { a /= 1024; i++; }
    return (n < 0 ? '-' : '') + three(a) + ' ' + BINARY[i];
  }
  function secs(s) {
    if (s === null || s === undefined) return '—';
    var a = Math.abs(s), sign = s < 0 ? '-' : '';
    if (a >= 1000) return Math.round(s).toLocaleString('en-US') + ' s';
    if (a === 0) return '0 s';
    if (a >= 1) return sign + three(a) + ' s';
    if (a >= 0.9995e-3) return sign + three(a * 1e3) + ' ms';
    if (a >= 0.9995e-6) return sign + three(a * 1e6) + ' µs';
    return sign + three(a * 1e9) + ' ns';
  }
  function fmt(unit, v) { return unit === 'B' ? siBytes(v) : unit === 's' ? secs(v) : si(v, unit); }
  function pct(x) { return (100 * x).toFixed(1) + '%'; }
  // a log axis's tick: the label Python wrote for that power of ten (one format for the whole axis)
  function logTick(ticks, v, unit) { var k = String(Math.round(Math.log10(v))); return ticks && ticks[k] !== undefined ? ticks[k] : si(v, unit); }
  function intensity(v) { return v === null ? '' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  FX.format = { si: si, siBytes: siBytes, secs: secs };

  function metric() { return D.metrics[FX.state.metric]; }
  function shortId(id) { var i = id.indexOf('.'); return i > 0 ? id.slice(i + 1) : id; }
  function label(m) { return m.count > 1 && m.id.slice(-1) === '*' ? m.id + ' (×' + m.count + ')' : m.id; }

  // -- the treemap -----------------------------------------------------------
  function treeData(list, mi, colors) {
    var nodes = {}, roots = [];
    list.forEach(function (m) { nodes[m.id] = { id: m.id, name: m.name, value: m.total[mi], m: m, children: [] }; });
    list.forEach(function (m) {
      var p = m.parent !== null ? nodes[m.parent] : undefined;
      (p ? p.children : roots).push(nodes[m.id]);
    });
    list.forEach(function (m) {
      var n = nodes[m.id];
      if (n.children.length) {
        n.itemStyle = { color: '#5b6770', borderColor: '#5b6770' };
        if (m.own[mi] > 0) {
          if (m.split.length) {
            m.split.forEach(function (s) {
              if (s[1][mi] > 0) {
                n.children.push({ id: m.id + '#' + s[0], name: 'own · ' + s[0].replace(/_/g, ' '), value: s[1][mi],
                  own: { m: m, category: s[0], ops: s[2], values: s[1] }, itemStyle: { color: colors[s[0]] || '#999' } });
              }
            });
          } else {
            n.children.push({ id: m.id + '#own', name: 'own ops', value: m.own[mi],
              own: { m: m, category: null, ops: '', values: m.own }, itemStyle: { color: '#9aa3ab' } });
          }
        }
      } else {
        n.itemStyle = { color: colors[m.category] || '#9aa3ab' };
      }
    });
    var order = {};
    list.forEach(function (m, i) { order[m.id] = i; });
    function rank(n) { return n.own ? order[n.own.m.id] : order[n.id]; }
    function prune(arr) {  // drop empty boxes; largest first, ties in the report's (natural) order
      return arr.filter(function (n) { return n.value > 0; }).sort(function (a, b) {
        return b.value - a.value || rank(a) - rank(b);
      }).map(function (n) {
        if (n.children) {
          n.children = prune(n.children);
          if (!n.children.length) delete n.children;
        }
        return n;
      });
    }
    return prune(roots);
  }

  function treeTooltip(total) {
    return function (p) {
      var d = p.data, mt = metric(), lines = [];
      if (!d) return '';
      var share = total ? ' (' + pct(d.value / total) + ' of the model)' : '';
      if (d.own) {
        lines.push('<b>' + esc(label(d.own.m)) + '</b> — own ops' + (d.own.category ? ': ' + esc(d.own.category) : ''));
        lines.push(esc(mt.label) + ': <b>' + fmt(mt.unit, d.value) + '</b>' + share);
        if (d.own.ops) lines.push('ops: ' + esc(d.own.ops));
        return lines.join('<br>');
      }
      var m = d.m;
      lines.push('<b>' + esc(label(m)) + '</b> ' + esc(m.class));
      if (m.count > 1) lines.push(m.count + ' modules folded; every number is their sum');
      lines.push(esc(mt.label) + ': <b>' + fmt(mt.unit, d.value) + '</b>' + share);
      D.metrics.forEach(function (x, i) {
        if (i !== FX.state.metric) lines.push(esc(x.label) + ': ' + fmt(x.unit, m.total[i]));
      });
      if (m.bound) lines.push('bound: ' + esc(m.bound) + (m.intensity !== null ? ', intensity ' + intensity(m.intensity) + ' FLOP/B' : ''));
      if (m.parameters) lines.push('parameters: ' + si(m.parameters) + ', weights ' + siBytes(m.weight_bytes));
      if (d.children) lines.push('<i>click to zoom in</i>');
      return lines.join('<br>');
    };
  }

  function treemapOption(view, name) {
    var mi = FX.state.metric, mt = metric();
    var list = FX.state.unfold && view.modules.full ? view.modules.full : view.modules.folded;
    var roots = treeData(list, mi, D.colors);
    var rootName = 'model', data = roots;
    if (roots.length === 1 && roots[0].children) { rootName = roots[0].name; data = roots[0].children; }
    var total = roots.reduce(function (s, r) { return s + r.value; }, 0);
    var index = {};
    (function walk(nodes, parent) {
      nodes.forEach(function (n) { index[n.id] = { name: n.name, parent: parent, zoomable: !!n.children }; if (n.children) walk(n.children, n.id); });
    })(data, null);
    FX.trees[name] = { roots: roots, index: index, rootName: rootName, root: null };
    return {
      animation: false,
      tooltip: { confine: true, formatter: treeTooltip(total), textStyle: { fontSize: 12 } },
      series: [{
        type: 'treemap', id: 'tree', name: rootName, data: data, roam: false, nodeClick: false, animation: false,
        top: 2, left: 2, right: 2, bottom: 2, visibleMin: 250, squareRatio: 1.4, sort: false,
        breadcrumb: { show: false },
        label: { show: true, fontSize: 11, lineHeight: 14, overflow: 'truncate',
          formatter: function (p) { return p.name + '\n' + fmt(mt.unit, p.value); } },
        upperLabel: { show: true, height: 18, color: '#fff', fontSize: 11, overflow: 'truncate',
          formatter: function (p) { return p.name + '   ' + fmt(mt.unit, p.value); } },
        itemStyle: { borderColor: '#fff', borderWidth: 1, gapWidth: 1 },
        levels: [
          { itemStyle: { borderWidth: 0, gapWidth: 3 }, upperLabel: { show: false } },
          { itemStyle: { borderWidth: 2, gapWidth: 1 } },
          { itemStyle: { borderWidth: 2, gapWidth: 1 } }
        ]
      }]
    };
  }

  function crumbs(elId) {
    var t = FX.trees[elId], el = document.getElementById(elId + '-crumbs');
    if (!t || !el) return;
    var path = [], id = t.root;
    while (id !== null && id !== undefined && t.index[id]) { path.unshift(id); id = t.index[id].parent; }
    var items = [{ id: null, name: t.rootName }].concat(path.map(function (i) { return { id: i, name: t.index[i].name }; }));
    el.replaceChildren(document.createTextNode('view: '));
    items.forEach(function (it, k) {
      if (k) el.appendChild(document.createTextNode(' › '));
      var last = k === items.length - 1, b = document.createElement(last ? 'b' : 'button');
      b.textContent = it.name;
      if (!last) b.addEventListener('click', function () { FX.treemap.goTo(it.id, elId); });
      el.appendChild(b);
    });
  }

  function treemapIds() { return D.mode === 'compare' ? ['treemap-a', 'treemap-b'] : ['treemap']; }

  function goTo(id, elId) {
    var chart = FX.charts[elId], t = FX.trees[elId];
    if (!chart || !t) return;
    while (id && !(t.index[id] && t.index[id].zoomable)) {  // the nearest box that exists here and has children
      id = t.index[id] ? t.index[id].parent : (id.lastIndexOf('.') > 0 ? id.slice(0, id.lastIndexOf('.')) : null);
    }
    var was = t.root;
    t.root = id || null;
    if (id) chart.dispatchAction({ type: 'treemapRootToNode', seriesId: 'tree', targetNodeId: id });
    else if (was) chart.setOption(treemapOption(elId === 'treemap-b' ? D.b : elId === 'treemap-a' ? D.a : D, elId), { notMerge: true });
    crumbs(elId);
  }

  function drawTreemap(elId, view) {
    var el = document.getElementById(elId);
    if (!el) return;
    var chart = FX.charts[elId];
    if (!chart) {
      chart = FX.charts[elId] = echarts.init(el, null, { renderer: 'svg' });
      var bar = document.createElement('div');
      bar.className = 'crumbs';
      bar.id = elId + '-crumbs';
      el.parentNode.insertBefore(bar, el);
      chart.on('click', function (p) {  // zoom into a box with children, in every tree on the page
        if (p.data && p.data.children) treemapIds().forEach(function (k) { goTo(p.data.id, k); });
      });
    }
    var keep = FX.trees[elId] ? FX.trees[elId].root : null;
    chart.setOption(treemapOption(view, elId), { notMerge: true });
    goTo(keep, elId);
  }
  FX.trees = {};
  FX.treemap = {
    goTo: function (id, elId) { (elId ? [elId] : treemapIds()).forEach(function (k) { goTo(id, k); }); },
    viewRoot: function (elId) { return FX.trees[elId || 'treemap'].root; },
    layout: function (id, elId) {
      var chart = FX.charts[elId || 'treemap'];
      var node = chart.getModel().getSeriesByIndex(0).getData().tree.getNodeById(id);
      var l = node && node.getLayout();
      return l && l.isInView !== false ? { x: l.x, y: l.y, width: l.width, height: l.height } : null;
    },
    roots: function (elId) { return FX.trees[elId || 'treemap'].roots; },
    size: function (elId) { var c = FX.charts[elId || 'treemap']; return { width: c.getWidth(), height: c.getHeight() }; }
  };

  // -- categories ------------------------------------------------------------
  function drawCategories() {
    var el = document.getElementById('categories-chart');
    if (!el) return;
    var chart = FX.charts.categories || echarts.init(el, null, { renderer: 'svg' });
    FX.charts.categories = chart;
    var mi = FX.state.metric, mt = metric(), series, names;
    if (D.mode === 'compare') {
      var cats = D.categories.slice().sort(function (a, b) { return Math.max(a.a[mi], a.b[mi]) - Math.max(b.a[mi], b.b[mi]); });
      names = cats.map(function (c) { return c.name; });
      series = ['a', 'b'].map(function (k) {
        return { type: 'bar', name: k.toUpperCase(), data: cats.map(function (c) { return c[k][mi]; }),
          itemStyle: { color: k === 'a' ? '#9aa3ab' : '#4e79a7' },
          label: { show: true, position: 'right', fontSize: 10, formatter: function (p) {
            var a = cats[p.dataIndex].a[mi];
            return fmt(mt.unit, p.value) + (k === 'b' && a ? '  ×' + (p.value / a).toPrecision(3) : '');
          } } };
      });
    } else {
      var rows = D.categories.filter(function (c) { return c.values[mi] !== null; }).slice()
        .sort(function (a, b) { return a.values[mi] - b.values[mi]; });
      var total = rows.reduce(function (s, c) { return s + c.values[mi]; }, 0);
      names = rows.map(function (c) { return c.name; });
      series = [{ type: 'bar', data: rows.map(function (c) {
        return { value: c.values[mi], itemStyle: { color: D.colors[c.name] || '#999' } };
      }), label: { show: true, position: 'right', fontSize: 11, formatter: function (p) {
        return fmt(mt.unit, p.value) + (total ? '  ' + pct(p.value / total) : '');
      } } }];
    }
    chart.setOption({
      animation: false, grid: { left: 150, right: 150, top: 30, bottom: 30 },
      legend: D.mode === 'compare' ? { top: 0 } : undefined,
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: function (v) { return fmt(mt.unit, v); } },
      xAxis: { type: 'value', name: mt.label, nameLocation: 'middle', nameGap: 24, axisLabel: { formatter: function (v) { return fmt(mt.unit, v); } } },
      yAxis: { type: 'category', data: names },
      series: series
    }, { notMerge: true });
  }

  // -- roofline --------------------------------------------------------------
  function drawRoofline() {
    var el = document.getElementById('roofline-chart'), rf = D.roofline;
    if (!el || !rf) return;
    var si_ = D.metrics.map(function (m) { return m.key; }).indexOf('predicted_seconds');
    if (si_ < 0) return;
    var pts = [], skipped = 0;
    D.modules.folded.forEach(function (m) {
      var fl = m.own[0] + m.own[1], by = m.own[2], s = m.own[si_];
      if (!(s > 0)) return;
      if (!(fl > 0) || !(by > 0)) { skipped++; return; }
      pts.push({ m: m, x: fl / by, y: fl / s, s: s, flops: fl, bytes: by });
    });
    var maxS = pts.reduce(function (a, p) { return Math.max(a, p.s); }, 0);
    var ranked = pts.slice().sort(function (a, b) { return b.s - a.s; }).slice(0, 8).map(function (p) { return p.m.id; });
    var bounds = ['tensor_core', 'cuda_core', 'memory'], colors = { tensor_core: '#4e79a7', cuda_core: '#f28e2b', memory: '#e15759' };
    var xs = pts.map(function (p) { return p.x; }).concat([rf.tensor_core / rf.bandwidth, rf.cuda_core / rf.bandwidth]);
    var xmin = Math.pow(10, Math.floor(Math.log10(Math.min.apply(null, xs)) - 0.3));
    var xmax = Math.pow(10, Math.ceil(Math.log10(Math.max.apply(null, xs)) + 0.3));
    function roof(peak) { return [[xmin, xmin * rf.bandwidth], [peak / rf.bandwidth, peak], [xmax, peak]]; }
    var series = [
      { type: 'line', name: 'tensor-core roof: ' + si(rf.tensor_core, 'FLOP/s') + ', memory ' + si(rf.bandwidth, 'B/s'),
        data: roof(rf.tensor_core), showSymbol: false, silent: true, itemStyle: { color: '#333' }, lineStyle: { color: '#333', width: 2 } },
      { type: 'line', name: 'CUDA-core roof: ' + si(rf.cuda_core, 'FLOP/s'), data: roof(rf.cuda_core), showSymbol: false, silent: true,
        itemStyle: { color: '#888' }, lineStyle: { color: '#888', width: 1.5, type: 'dashed' } }
    ];
    var labelled = pts.filter(function (p) { return ranked.indexOf(p.m.id) >= 0; })
      .sort(function (a, b) { return a.x - b.x; }).map(function (p) { return p.m.id; });
    bounds.concat(['(mixed)']).forEach(function (b) {
      var mine = pts.filter(function (p) { return (bounds.indexOf(p.m.own_bound) >= 0 ? p.m.own_bound : '(mixed)') === b; });
      if (!mine.length) return;
      series.push({ type: 'scatter', name: b === '(mixed)' ? 'mixed' : b.replace('_', '-') + ' bound', itemStyle: { color: colors[b] || '#999', opacity: 0.8 },
        labelLine: { show: true, lineStyle: { color: '#aaa' } },
        labelLayout: function (q) {  // fan the labels out below the points so that clustered ones stay readable
          var k = labelled.indexOf(mine[q.dataIndex].m.id);
          return { dx: 12, dy: 22 + 17 * k, align: 'left' };
        },
        data: mine.map(function (p) {
          return { value: [p.x, p.y], p: p, symbolSize: 6 + 30 * Math.sqrt(p.s / maxS),
            label: { show: labelled.indexOf(p.m.id) >= 0, formatter: shortId(p.m.id) + (p.m.count > 1 ? ' ×' + p.m.count : ''), position: 'right', fontSize: 11, color: '#222' } };
        }) });
    });
    var chart = FX.charts.roofline || echarts.init(el, null, { renderer: 'svg' });
    FX.charts.roofline = chart;
    chart.setOption({
      animation: false, grid: { left: 80, right: 200, top: 40, bottom: 60 },
      legend: { top: 0 },
      tooltip: { trigger: 'item', confine: true, formatter: function (q) {
        var p = q.data && q.data.p;
        if (!p) return '';
        return '<b>' + esc(label(p.m)) + '</b> ' + esc(p.m.class) + (p.m.count > 1 ? ' (' + p.m.count + ' folded, summed)' : '') +
          '<br>arithmetic intensity: <b>' + intensity(p.x) + ' FLOP/B</b>' +
          '<br>bound: <b>' + esc(p.m.own_bound || '?') + '</b>' +
          '<br>reaches ' + si(p.y, 'FLOP/s') + ' in the predicted ' + secs(p.s) +
          '<br>own FLOPs ' + si(p.flops, 'FLOP') + ', bytes moved ' + siBytes(p.bytes);
      } },
      xAxis: { type: 'log', name: 'arithmetic intensity (FLOP per byte moved)', nameLocation: 'middle', nameGap: 30, min: xmin, max: xmax,
        axisLabel: { formatter: function (v) { return logTick(rf.ticks.x, v, ''); } } },
      yAxis: { type: 'log', name: 'FLOP/s reached in the predicted time', axisLabel: { formatter: function (v) { return logTick(rf.ticks.y, v, 'FLOP/s'); } } },
      series: series
    }, { notMerge: true });
    FX.roofline = { pixel: function (id) {  // where a module's point is drawn, in page coordinates
      var p = pts.filter(function (q) { return q.m.id === id; })[0], box = el.getBoundingClientRect();
      if (!p) return null;
      var xy = chart.convertToPixel({ gridIndex: 0 }, [p.x, p.y]);
      return { x: box.left + window.scrollX + xy[0], y: box.top + window.scrollY + xy[1] };
    } };
    var note = document.createElement('p');
    note.className = 'note';
    note.textContent = pts.length + ' modules placed' + (skipped ? '; ' + skipped + ' with no FLOPs or no bytes (pure data movement or free) are not: a log scale has no zero' : '') + '.';
    el.parentNode.appendChild(note);
  }

  // -- devices and GPU counts --------------------------------------------------
  function drawDevices() {
    var el = document.getElementById('devices-chart');
    if (!el || !D.devices || !D.devices.length) return;
    var chart = echarts.init(el, null, { renderer: 'svg' });
    FX.charts.devices = chart;
    var ser = [['bound', 'bound (roofline at 100%)', '#4e79a7'], ['predicted', 'predicted (kernel model)', '#f28e2b']].filter(function (k) {
      return D.devices.some(function (d) { return d[k[0]] !== null; });
    }).map(function (k) {
      return { type: 'bar', name: k[1] + ', whole generation', data: D.devices.map(function (d) {
          return d.fits ? d[k[0]] : { value: d[k[0]], itemStyle: { color: '#d3d3d3', borderColor: k[2], borderWidth: 2 } };
        }), itemStyle: { color: k[2] },
        label: { show: true, position: 'top', fontSize: 10, formatter: function (p) { return secs(p.value); } } };
    });
    chart.setOption({ animation: false, legend: { top: 0 }, grid: { left: 70, right: 20, top: 40, bottom: 40 },
      tooltip: { trigger: 'axis', valueFormatter: secs },
      xAxis: { type: 'category', data: D.devices.map(function (d) { return d.name + (d.fits ? '' : '\n(does not fit)'); }) },
      yAxis: { type: 'value', name: 'seconds, whole generation', axisLabel: { formatter: secs } }, series: ser });
  }

  function drawScaling() {
    var el = document.getElementById('scaling-chart');
    if (!el || !D.scaling || !D.scaling.length) return;
    var chart = echarts.init(el, null, { renderer: 'svg' });
    FX.charts.scaling = chart;
    var x = D.scaling.map(function (s) { return String(s.gpus) + (s.fits ? '' : ' (does not fit)'); });
    // a count that does not fit: a grey hatched bar labelled "does not fit", a hollow efficiency marker
    var hatch = { symbol: 'rect', symbolSize: 1, rotation: Math.PI / 4, dashArrayX: [1, 0], dashArrayY: [2, 5], color: 'rgba(90,90,90,0.45)' };
    chart.setOption({ animation: false, legend: { top: 0 }, grid: { left: 70, right: 70, top: 40, bottom: 40 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', name: 'GPUs', data: x },
      yAxis: [{ type: 'value', name: 'seconds', axisLabel: { formatter: secs } },
        { type: 'value', name: 'efficiency', min: 0, max: 1, axisLabel: { formatter: function (v) { return pct(v); } } }],
      series: [
        { type: 'bar', name: 'predicted seconds, whole generation', itemStyle: { color: '#4e79a7' }, data: D.scaling.map(function (s) {
            return s.fits ? s.seconds : { value: s.seconds, itemStyle: { color: '#d3d3d3', borderColor: '#7f7f7f', decal: hatch } };
          }),
          label: { show: true, position: 'top', fontSize: 10, formatter: function (p) {
            return secs(p.value) + (D.scaling[p.dataIndex].fits ? '' : '\ndoes not fit'); } } },
        { type: 'line', name: 'efficiency', yAxisIndex: 1, itemStyle: { color: '#e15759' }, data: D.scaling.map(function (s) {
            return s.fits ? s.efficiency : { value: s.efficiency, symbol: 'emptyCircle', symbolSize: 8 };
          }) }
      ] });
  }

  // -- the plan's frontier: predicted seconds against cost, exact and output-changing apart ---------
  function drawPlan() {
    var el = document.getElementById('plan-chart');
    if (!el || !D.plan || !D.plan.exact || !D.plan.exact.length) return;
    var chart = echarts.init(el, null, { renderer: 'svg' });
    FX.charts.plan = chart;
    function pts(rows) { return rows.map(function (r) { return { value: [r.seconds, r.cost, r.gpus], row: r }; }); }
    chart.setOption({ animation: false, legend: { top: 0 }, grid: { left: 80, right: 30, top: 40, bottom: 50 },
      tooltip: { trigger: 'item', formatter: function (p) {
        var r = p.data.row; return secs(r.seconds) + ', ' + r.cost.toPrecision(4) + ' (' + D.plan.cost_axis + '), ' + r.gpus + ' GPU(s)<br>' + r.why + '<br><code>' + r.label + '</code>'; } },
      xAxis: { type: 'log', name: 'predicted seconds, whole generation', nameLocation: 'middle', nameGap: 30, axisLabel: { formatter: secs } },
      yAxis: { type: 'log', name: D.plan.cost_axis },
      series: [
        { type: 'line', step: false, name: 'Pareto frontier (same output)', symbolSize: function (v) { return 6 + 2 * v[2]; }, itemStyle: { color: '#4e79a7' }, data: pts(D.plan.exact) },
        { type: 'scatter', name: 'changes the output', symbol: 'diamond', symbolSize: function (v) { return 6 + 2 * v[2]; }, itemStyle: { color: '#e15759' }, data: pts(D.plan.quality || []) }
      ] });
  }

  // -- the module table --------------------------------------------------------
  var table = { sort: null, desc: true };

  function reportColumns() {
    var cols = [
      { key: 'id', label: 'module', cls: 'id', text: function (m) { return label(m); }, sort: function (m) { return m.id; } },
      { key: 'class', label: 'class', text: function (m) { return m.class; }, sort: function (m) { return m.class; } },
      { key: 'count', label: '×', r: true, text: function (m) { return String(m.count); }, sort: function (m) { return m.count; } },
      { key: 'parameters', label: 'params', r: true, text: function (m) { return si(m.parameters); }, sort: function (m) { return m.parameters; } }
    ];
    D.metrics.forEach(function (mt, i) {
      cols.push({ key: 'total' + i, label: mt.short, r: true, text: function (m) { return fmt(mt.unit, m.total[i]); }, sort: function (m) { return m.total[i]; } });
    });
    cols.push({ key: 'own', label: 'own ops', r: true, text: function (m) { return fmt(metric().unit, m.own[FX.state.metric]); }, sort: function (m) { return m.own[FX.state.metric]; } });
    cols.push({ key: 'share', label: 'share', r: true, text: function (m) { return rootTotal() ? pct(m.total[FX.state.metric] / rootTotal()) : ''; }, sort: function (m) { return m.total[FX.state.metric]; } });
    if (D.metrics.some(function (m) { return m.unit === 's'; })) {
      cols.push({ key: 'bound', label: 'bound', text: function (m) { return m.bound || ''; }, sort: function (m) { return m.bound || ''; } });
      cols.push({ key: 'intensity', label: 'FLOP/B', r: true, text: function (m) { return intensity(m.intensity); }, sort: function (m) { return m.intensity === null ? -1 : m.intensity; } });
    }
    return cols;
  }

  function compareColumns() {
    function val(r, k) { return r[k][FX.state.metric]; }
    function delta(r) { return val(r, 'b') - val(r, 'a'); }
    return [
      { key: 'id', label: 'module (own ops)', cls: 'id', text: function (r) { return r.id; }, sort: function (r) { return r.id; } },
      { key: 'class', label: 'class', text: function (r) { return r.class; }, sort: function (r) { return r.class; } },
      { key: 'count', label: '× A → B', r: true, text: function (r) { return r.count_a + ' → ' + r.count_b; }, sort: function (r) { return r.count_b - r.count_a; } },
      { key: 'a', label: 'A', r: true, text: function (r) { return fmt(metric().unit, val(r, 'a')); }, sort: function (r) { return val(r, 'a'); } },
      { key: 'b', label: 'B', r: true, text: function (r) { return fmt(metric().unit, val(r, 'b')); }, sort: function (r) { return val(r, 'b'); } },
      { key: 'delta', label: 'change', r: true, text: function (r) { var d = delta(r); return (d > 0 ? '+' : d < 0 ? '−' : '±') + fmt(metric().unit, Math.abs(d)); },
        cls: function (r) { return deltaClass(val(r, 'a'), val(r, 'b')); }, sort: function (r) { return Math.abs(delta(r)); } },
      { key: 'ratio', label: 'ratio', r: true, text: function (r) { var a = val(r, 'a'), b = val(r, 'b'); return a ? '×' + (b / a).toPrecision(3) : (b ? 'new' : ''); },
        cls: function (r) { return deltaClass(val(r, 'a'), val(r, 'b')); }, sort: function (r) { var a = val(r, 'a'); return a ? val(r, 'b') / a : Infinity; } },
      { key: 'share', label: 'share of the change', r: true, text: function (r) { var t = totalChange(); return t ? pct(delta(r) / t) : ''; }, sort: function (r) { return delta(r); } }
    ];
  }
  function deltaClass(a, b) {
    var d = b - a, c = d === 0 ? 'same' : d > 0 ? 'up' : 'down';
    if ((a && Math.abs(d) / Math.abs(a) > 0.05) || (!a && d)) c += ' big';
    return c;
  }
  function totalChange() {
    return D.deltas.reduce(function (s, r) { return s + r.b[FX.state.metric] - r.a[FX.state.metric]; }, 0);
  }
  function rootTotal() {
    return D.modules.folded.filter(function (m) { return m.parent === null; })
      .reduce(function (s, m) { return s + m.total[FX.state.metric]; }, 0);
  }

  function tableRows() {
    if (D.mode === 'compare') return D.deltas;
    return FX.state.unfold && D.modules.full ? D.modules.full : D.modules.folded;
  }

  function drawTable() {
    var el = document.getElementById('module-table');
    if (!el) return;
    var cols = D.mode === 'compare' ? compareColumns() : reportColumns();
    if (table.sort === null) table.sort = D.mode === 'compare' ? 'delta' : 'total' + FX.state.metric;
    var col = cols.filter(function (c) { return c.key === table.sort; })[0] || cols[0];
    var q = (document.getElementById('search').value || '').trim().toLowerCase();
    var rows = tableRows().filter(function (r) {
      if (!q) return true;
      return [r.id, r.class, r.bound || '', r.category || ''].join(' ').toLowerCase().indexOf(q) >= 0;
    });
    rows.sort(function (a, b) {
      var x = col.sort(a), y = col.sort(b), c = x < y ? -1 : x > y ? 1 : 0;
      if (c === 0) c = a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      return table.desc ? -c : c;
    });
    var thead = document.createElement('thead'), tr = document.createElement('tr');
    cols.forEach(function (c) {
      var th = document.createElement('th');
      th.textContent = c.label;
      th.dataset.key = c.key;
      if (c.r) th.className = 'r';
      if (c.key === table.sort) th.classList.add(table.desc ? 'desc' : 'asc');
      th.addEventListener('click', function () {
        if (table.sort === c.key) table.desc = !table.desc; else { table.sort = c.key; table.desc = c.key !== 'id' && c.key !== 'class'; }
        drawTable();
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    var tbody = document.createElement('tbody');
    rows.forEach(function (r) {
      var row = document.createElement('tr');
      if (D.mode === 'compare') row.className = r.count_a === 0 ? 'added' : r.count_b === 0 ? 'removed' : '';
      cols.forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = c.text(r);
        var cls = [c.r ? 'r' : '', typeof c.cls === 'function' ? c.cls(r) : (c.cls || '')].join(' ').trim();
        if (cls) td.className = cls;
        row.appendChild(td);
      });
      tbody.appendChild(row);
    });
    el.replaceChildren(thead, tbody);
    document.getElementById('row-count').textContent = rows.length + ' of ' + tableRows().length + ' rows';
  }
  FX.table = { rows: function () {
    return Array.prototype.map.call(document.querySelectorAll('#module-table tbody tr'), function (tr) { return tr.cells[0].textContent; });
  } };

  // -- wiring ------------------------------------------------------------------
  function drawTrees() {
    if (D.mode === 'compare') { drawTreemap('treemap-a', D.a); drawTreemap('treemap-b', D.b); } else drawTreemap('treemap', D);
  }
  function redraw() { drawTrees(); drawCategories(); drawTable(); }

  var sel = document.getElementById('metric');
  if (sel) sel.addEventListener('change', function () {
    FX.state.metric = D.metrics.map(function (m) { return m.key; }).indexOf(sel.value);
    if (table.sort && /^total\d+$/.test(table.sort)) table.sort = 'total' + FX.state.metric;
    redraw();
  });
  var unfold = document.getElementById('unfold');
  if (unfold) unfold.addEventListener('change', function () { FX.state.unfold = unfold.checked; drawTrees(); drawTable(); });
  var search = document.getElementById('search');
  if (search) search.addEventListener('input', drawTable);
  window.addEventListener('resize', function () { Object.keys(FX.charts).forEach(function (k) { FX.charts[k].resize(); }); });

  if (sel) FX.state.metric = Math.max(0, D.metrics.map(function (m) { return m.key; }).indexOf(sel.value));
  if (unfold) FX.state.unfold = unfold.checked;
  redraw();
  drawRoofline();
  drawDevices();
  drawScaling();
  drawPlan();
  FX.ready = true;
})();
