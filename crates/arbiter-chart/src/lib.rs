//! Small SVG line charts for the console and the CLI's reports (risk–coverage
//! curves, queue length over time, dashboards). Plain strings, no
//! dependencies but the core's timestamps; every label is escaped.

use std::fmt::Write;

/// One line on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
    /// CSS colour.
    pub color: &'static str,
    /// Dashed line.
    pub dashed: bool,
}

/// A labelled point to mark (e.g. the chosen threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Position in data units.
    pub at: (f64, f64),
    /// Label shown beside it.
    pub label: String,
}

/// A chart to draw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Heading drawn above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines to draw, each with its own colour and legend entry.
    pub series: Vec<Series>,
    /// Marked points.
    pub markers: Vec<Marker>,
    /// A horizontal reference line (e.g. a budget) and its label.
    pub hline: Option<(f64, String)>,
    /// How the x axis labels its values.
    pub x_axis: Axis,
    /// How the y axis labels its values.
    pub y_axis: Axis,
    /// The x range to draw instead of the data's.
    pub x_range: Option<(f64, f64)>,
}

/// How an axis labels its values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Axis {
    /// Plain numbers.
    #[default]
    Number,
    /// Shares in `[0, 1]`, labelled as percentages.
    Percent,
    /// Whole numbers of things (cases, decisions): ticks fall on integers.
    Count,
    /// Hours after a moment (ms since the epoch), labelled as UTC clock times.
    Clock(i64),
}

impl Axis {
    fn label(self, v: f64) -> String {
        match self {
            Axis::Number => nice(v),
            Axis::Count => format!("{v:.0}"),
            Axis::Percent => {
                let p = 100.0 * v;
                if p.abs() >= 10.0 || p == p.trunc() { format!("{p:.0}%") } else { format!("{p:.1}%") }
            }
            Axis::Clock(origin) => {
                let ms = origin + (v * 3_600_000.0).round() as i64;
                let t = arbiter_core::Timestamp(ms).to_string();
                // `2026-11-26T16:00:00.000Z` -> `11-26 16:00`
                format!("{} {}", t.get(5..10).unwrap_or(""), t.get(11..16).unwrap_or(""))
            }
        }
    }
}

/// Escape text for SVG/HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The smallest 1, 2 or 5 times a power of ten at least `raw` (whole numbers on a count axis).
fn tick_step(raw: f64, axis: Axis) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * mag);
    if axis == Axis::Count { step.max(1.0) } else { step }
}

fn nice(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Chart {
    /// Render as a standalone SVG document.
    pub fn svg(&self) -> String {
        let (w, h) = (640.0, 400.0);
        let (l, r, t, b) = (70.0, 20.0, 40.0, 50.0);
        let pts = self.series.iter().flat_map(|s| s.points.iter()).chain(self.markers.iter().map(|m| &m.at));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, f64::NEG_INFINITY);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if let Some((y, _)) = self.hline {
            y1 = y1.max(y);
        }
        if let Some((a, b)) = self.x_range {
            (x0, x1) = (a, b);
        }
        if !x0.is_finite() {
            (x0, x1, y1) = (0.0, 1.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        // the value axis ends on a round tick above the data, its ticks a 1-2-5 step apart
        let step = tick_step((y1 - y0) / 5.0, self.y_axis);
        (y0, y1) = ((y0 / step).floor() * step, (y1 / step).ceil() * step);
        let y_ticks = ((y1 - y0) / step).round() as usize;
        let sx = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
        let sy = |y: f64| h - b - (y - y0) / (y1 - y0) * (h - t - b);
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            o,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            l,
            escape(&self.title)
        );
        for i in 0..=y_ticks {
            let fy = y0 + step * i as f64;
            let _ = write!(
                o,
                r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - r,
                l - 6.0,
                sy(fy) + 4.0,
                escape(&self.y_axis.label(fy)),
                y = sy(fy)
            );
        }
        for i in 0..=5 {
            let fx = x0 + (x1 - x0) * i as f64 / 5.0;
            let _ = write!(
                o,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                sx(fx),
                h - b + 18.0,
                escape(&self.x_axis.label(fx))
            );
        }
        let _ = write!(
            o,
            r##"<line x1="{l}" x2="{l}" y1="{t}" y2="{}" stroke="#333"/><line x1="{l}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
            h - b,
            w - r,
            h - b,
            h - b
        );
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (l + w - r) / 2.0,
            h - 10.0,
            escape(&self.x_label)
        );
        let _ = write!(
            o,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (t + h - b) / 2.0,
            escape(&self.y_label)
        );
        if let Some((y, label)) = &self.hline {
            let _ = write!(
                o,
                r##"<line x1="{l}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#c00">{}</text>"##,
                w - r,
                w - r - 4.0,
                sy(*y) - 4.0,
                escape(label),
                yy = sy(*y)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
            let dash = if s.dashed { r#" stroke-dasharray="4 3""# } else { "" };
            let _ = write!(
                o,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
                s.color,
                path.join(" "),
                escape(&s.name)
            );
            // Every point carries its numbers on hover (and is visible even when alone).
            for &(x, y) in &s.points {
                let _ = write!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"><title>{}: {}, {}</title></circle>"#,
                    sx(x),
                    sy(y),
                    s.color,
                    escape(&s.name),
                    escape(&self.x_axis.label(x)),
                    escape(&self.y_axis.label(y))
                );
            }
            let ly = t + 4.0 + 16.0 * i as f64;
            let _ = write!(
                o,
                r#"<rect x="{}" y="{ly}" width="12" height="3" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                w - r - 160.0,
                s.color,
                w - r - 144.0,
                ly + 5.0,
                escape(&s.name)
            );
        }
        for (i, m) in self.markers.iter().enumerate() {
            let (x, y) = (sx(m.at.0), sy(m.at.1));
            // labels of nearby markers stack instead of overlapping; near the right edge they end at the point
            let (lx, anchor) = if x > w - r - 180.0 { (x - 8.0, "end") } else { (x + 8.0, "start") };
            let _ = write!(
                o,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="#111"><title>{}</title></circle><text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
                escape(&m.label),
                (y - 8.0 - 16.0 * i as f64).max(t + 12.0),
                escape(&m.label)
            );
        }
        o.push_str("</svg>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_svg() {
        let c = Chart {
            title: "risk <script>".into(),
            x_label: "coverage".into(),
            y_label: "error".into(),
            series: vec![Series {
                name: "a&b".into(),
                points: vec![(0.0, 0.0), (1.0, 0.5)],
                color: "#06c",
                dashed: false,
            }],
            markers: vec![Marker { at: (0.5, 0.2), label: "chosen".into() }],
            hline: Some((0.3, "budget".into())),
            ..Default::default()
        };
        let svg = c.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("risk &lt;script&gt;") && svg.contains("a&amp;b"));
        assert!(!svg.contains("<script>"));
        assert_eq!(Chart::default().svg().matches("<polyline").count(), 0);
    }

    /// The labels on the value axis of a rendered chart.
    fn y_labels(c: &Chart) -> Vec<String> {
        c.svg().split(r#"text-anchor="end">"#).skip(1).map(|t| t.split('<').next().unwrap_or("").to_string()).collect()
    }

    #[test]
    fn value_axes_end_on_round_ticks() {
        let series = |points: Vec<(f64, f64)>| vec![Series { name: "s".into(), points, color: "#06c", dashed: false }];
        // a share that reaches 100% stops there, in 20% steps
        let rate = Chart { series: series(vec![(0.0, 0.3), (1.0, 1.0)]), y_axis: Axis::Percent, ..Default::default() };
        assert_eq!(y_labels(&rate), ["0%", "20%", "40%", "60%", "80%", "100%"]);
        // a count of 3.2 at most: whole numbers only
        let count = Chart { series: series(vec![(0.0, 0.0), (1.0, 3.2)]), y_axis: Axis::Count, ..Default::default() };
        assert_eq!(y_labels(&count), ["0", "1", "2", "3", "4"]);
        let one = Chart { series: series(vec![(0.0, 0.0), (1.0, 1.0)]), y_axis: Axis::Count, ..Default::default() };
        assert_eq!(y_labels(&one), ["0", "1"]);
        let small =
            Chart { series: series(vec![(0.0, 0.0), (1.0, 0.0123)]), y_axis: Axis::Percent, ..Default::default() };
        assert_eq!(y_labels(&small), ["0%", "0.5%", "1%", "1.5%"]);
        assert_eq!(tick_step(0.64, Axis::Number), 1.0);
        assert_eq!(tick_step(0.0031, Axis::Number), 0.005);
        assert_eq!(tick_step(0.3, Axis::Count), 1.0);
    }
}
