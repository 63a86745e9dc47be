/* The usage view's time charts: uPlot 1.6.32 (static/vendor/uplot/, loaded as a classic
 * script before the modules, so window.uPlot is there when this runs).
 *
 * uPlot draws on canvas and styles its few elements through the CSSOM (el.style.x = …),
 * which the page's CSP (style-src 'self') allows; its stylesheet is a file. Colours come
 * from the page's CSS custom properties (--series-N, --muted, --border), read again when the
 * system switches between light and dark. A live update with the same series and buckets is
 * a setData(); anything else builds the chart again.
 */

const DARK = window.matchMedia('(prefers-color-scheme: dark)');
const charts = new Set();

function palette() {
  const css = getComputedStyle(document.documentElement);
  const get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    series: (i) => get(`--series-${i}`, '#2458d3'),
    other: get('--series-other', '#9aa3b2'),
    line: get('--series-0', '#2458d3'),
    axis: get('--muted', '#6b7485'),
    grid: get('--border', '#e2e5ea'),
  };
}

/** The colour of series i (null: "Other"), from the stylesheet. */
export function seriesColor(pal, i) {
  return i === null ? pal.other : pal.series(i);
}

export class TimeChart {
  /**
   * el: the [data-usage-chart] element the chart goes into; readout: the element that tells
   * the bucket under the pointer; kind: 'bars' (stacked) or 'line'.
   */
  constructor(el, { kind = 'bars', height = 220, readout = null } = {}) {
    this.el = el;
    this.kind = kind;
    this.height = height;
    this.readout = readout;
    this.u = null;
    this.spec = null;
    this.signature = '';
    this.width = 0;
    charts.add(this);
    this.resizer = new ResizeObserver(() => this.resizeSoon());
    this.resizer.observe(el);
  }

  resizeSoon() {
    if (this.resizeFrame) return;
    this.resizeFrame = requestAnimationFrame(() => {
      this.resizeFrame = 0;
      const width = this.widthNow();
      if (this.u && width !== this.width) {
        this.width = width;
        this.u.setSize({ width, height: this.height });
      }
    });
  }

  widthNow() {
    return Math.max(240, Math.floor(this.el.clientWidth));
  }

  /**
   * spec: {data: [xs, ...series values], series: [{label, colorIndex (null: other)}], tz,
   *        pad (seconds either side), format(value) for the y axis, yMax (fixed top or null),
   *        yEmpty (the top while every value is 0), incrs (the y axis' tick steps, or none),
   *        describe(idx) -> the readout's text for a bucket}.
   */
  update(spec) {
    this.spec = spec;
    const signature = JSON.stringify([spec.series, spec.tz, spec.pad, spec.yMax, spec.data[0].length,
      spec.data[0][0], spec.data[0][spec.data[0].length - 1], this.kind]);
    if (this.u && signature === this.signature) {
      this.u.setData(spec.data, true);
      this.describe(this.u.cursor.idx);
      return;
    }
    this.signature = signature;
    this.build();
  }

  build() {
    const spec = this.spec;
    if (!spec) return;
    if (this.u) this.u.destroy();
    const uPlot = window.uPlot;
    const pal = palette();
    const bars = this.kind === 'bars' ? uPlot.paths.bars({ size: [0.72, 64], gap: 1 }) : null;
    const axis = {
      stroke: pal.axis,
      font: '11px system-ui, sans-serif',
      grid: { stroke: pal.grid, width: 1 },
      ticks: { stroke: pal.grid, width: 1, size: 4 },
    };
    const series = spec.series.map((s) => {
      const color = seriesColor(pal, s.colorIndex);
      return this.kind === 'bars'
        ? { label: s.label, fill: color, stroke: color, width: 0, paths: bars, points: { show: false } }
        : { label: s.label, stroke: color, width: 2, spanGaps: false, points: { show: true, size: 5, fill: color } };
    });
    this.width = this.widthNow();
    const opts = {
      width: this.width,
      height: this.height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), spec.tz),
      legend: { show: false },
      select: { show: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { show: this.kind !== 'bars' } },
      scales: {
        x: { time: true, range: (u, min, max) => [min - spec.pad, max + spec.pad] },
        y: { range: (u, min, max) => [0, spec.yMax || (max > 0 ? max * 1.08 : spec.yEmpty || 1)] },
      },
      axes: [
        Object.assign({}, axis),
        Object.assign({}, axis, { size: 58, values: (u, splits) => splits.map((v) => spec.format(v)) },
          spec.incrs ? { incrs: spec.incrs } : {}),
      ],
      series: [{}, ...series],
      hooks: { setCursor: [(u) => this.describe(u.cursor.idx)] },
    };
    this.u = new uPlot(opts, spec.data, this.el);
    this.describe(null);
  }

  describe(idx) {
    if (!this.readout || !this.spec) return;
    const textNow = idx === null || idx === undefined ? '' : this.spec.describe(idx);
    if (this.readout.textContent !== textNow) this.readout.textContent = textNow;
  }
}

// Light <-> dark: the canvas colours are the stylesheet's, read again.
DARK.addEventListener('change', () => {
  for (const chart of charts) {
    chart.signature = '';
    chart.build();
  }
});
