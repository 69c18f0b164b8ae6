/**
 * A small SVG line chart, with no plotting dependency: one panel per series, stacked, sharing the time
 * axis, each with its own y axis (0 to the series' maximum, rounded up), tick labels, and dashed vertical
 * lines for events (reloads, key rotations). Values are written as given; the caller picks the units.
 */

export interface Series { name: string, unit: string, points: ReadonlyArray<readonly [seconds: number, value: number]> }
export interface Mark { seconds: number, label: string }

const WIDTH = 900
const PANEL_HEIGHT = 150
const MARGIN = { left: 70, right: 20, top: 55, bottom: 40 }
const GAP = 30

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** A round number at or above `value`: 1, 2 or 5 times a power of ten. */
export function niceCeiling (value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

const format = (value: number): string => Math.abs(value) >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toPrecision(2)

function panel (series: Series, top: number, seconds: number, marks: readonly Mark[]): string[] {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const yMax = niceCeiling(Math.max(0, ...series.points.map(([, v]) => v)))
  const x = (s: number): number => MARGIN.left + (seconds === 0 ? 0 : (s / seconds) * plotWidth)
  const y = (v: number): number => top + PANEL_HEIGHT - (v / yMax) * PANEL_HEIGHT
  const out = [
    `<text x="${MARGIN.left}" y="${top - 8}" font-size="13" font-weight="bold">${escape(`${series.name} (${series.unit})`)}</text>`,
    `<line x1="${MARGIN.left}" y1="${top}" x2="${MARGIN.left}" y2="${top + PANEL_HEIGHT}" stroke="#000"/>`,
    `<line x1="${MARGIN.left}" y1="${top + PANEL_HEIGHT}" x2="${WIDTH - MARGIN.right}" y2="${top + PANEL_HEIGHT}" stroke="#000"/>`
  ]
  for (const fraction of [0, 0.5, 1]) {
    const value = yMax * fraction
    out.push(`<line x1="${MARGIN.left - 4}" y1="${y(value)}" x2="${WIDTH - MARGIN.right}" y2="${y(value)}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 8}" y="${y(value) + 4}" font-size="11" text-anchor="end">${format(value)}</text>`)
  }
  for (const mark of marks) {
    out.push(`<line x1="${x(mark.seconds).toFixed(1)}" y1="${top}" x2="${x(mark.seconds).toFixed(1)}" y2="${top + PANEL_HEIGHT}" stroke="${mark.label === 'reload' ? '#2a2' : '#d33'}" stroke-dasharray="4 3"/>`)
  }
  const path = series.points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
  out.push(`<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="${path}"/>`)
  return out
}

/** The chart: `series` stacked over a time axis of `seconds`, `marks` drawn in every panel. */
export function lineChart (title: string, series: readonly Series[], seconds: number, marks: readonly Mark[]): string {
  const height = MARGIN.top + series.length * (PANEL_HEIGHT + GAP) + MARGIN.bottom
  const bottom = MARGIN.top + series.length * (PANEL_HEIGHT + GAP) - GAP
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const ticks = Array.from({ length: 7 }, (_, i) => (seconds * i) / 6)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<text x="${MARGIN.left}" y="38" font-size="11" fill="#555">dashed lines: green, a config reload; red, a key rotation or a retired key</text>`,
    ...series.flatMap((s, i) => panel(s, MARGIN.top + 10 + i * (PANEL_HEIGHT + GAP), seconds, marks)),
    ...ticks.map((s) => `<text x="${(MARGIN.left + (seconds === 0 ? 0 : (s / seconds) * plotWidth)).toFixed(1)}" y="${bottom + 28}" font-size="11" text-anchor="middle">${format(s)} s</text>`),
    '</svg>',
    ''
  ].join('\n')
}
