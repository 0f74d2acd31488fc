//! The repository page's cost chart: session cost per UTC day against the daily budget, drawn on the server
//! as the numbers of a small SVG (bars and a budget line) that the template writes out. No JavaScript.

use serde::Serialize;
use time::{Date, Duration};

use crate::job::SessionRecord;

/// The chart's drawing area, in SVG user units (the `viewBox`; the browser scales it).
pub const WIDTH: f64 = 560.0;
/// The chart's height, in SVG user units, labels included.
pub const HEIGHT: f64 = 180.0;
/// Room left of the bars for the scale's labels, and below them for the dates.
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 12.0;

/// One UTC day's sessions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Day {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The sum of the recorded costs of the sessions started that day, US dollars (a session with no cost
    /// recorded counts as 0, as the daily budget counts it).
    pub cost_usd: f64,
    /// The sessions started that day.
    pub sessions: u32,
}

/// The `n` UTC days ending with `today` (oldest first) and the sessions of `sessions` started on each;
/// sessions started on other days are left out. A session counts on the day it started, as the daily
/// budget ([`crate::constitution::check_budget`]) counts it.
pub fn days(sessions: &[SessionRecord], today: Date, n: usize) -> Vec<Day> {
    let first = today - Duration::days(n.saturating_sub(1) as i64);
    let mut out: Vec<Day> = (0..n)
        .map(|i| Day { date: (first + Duration::days(i as i64)).to_string(), cost_usd: 0.0, sessions: 0 })
        .collect();
    for s in sessions {
        let day = s.started_at.to_offset(time::UtcOffset::UTC).date();
        if day < first || day > today {
            continue;
        }
        let i = (day - first).whole_days() as usize;
        if let Some(d) = out.get_mut(i) {
            d.cost_usd += s.cost_usd.unwrap_or(0.0);
            d.sessions = d.sessions.saturating_add(1);
        }
    }
    out
}

/// One bar: its rectangle, in SVG user units, and what it stands for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height (0 for a day without cost).
    pub height: f64,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// The day of the month, the label under the bar.
    pub label: String,
    /// The cost as shown, e.g. `$0.40`.
    pub cost: String,
    /// Whether the day's cost reached the budget.
    pub over: bool,
}

/// The chart, ready to write out as SVG.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Chart {
    /// [`WIDTH`].
    pub width: f64,
    /// [`HEIGHT`].
    pub height: f64,
    /// The bars, oldest day first.
    pub bars: Vec<Bar>,
    /// The left edge of the bars and the bottom of the drawing area (the axis).
    pub left: f64,
    /// The axis' height: where a cost of 0 is.
    pub base: f64,
    /// The top of the scale and its label (`$6.00`).
    pub top: f64,
    /// The scale's maximum, as shown.
    pub top_label: String,
    /// The budget line's height, when there is a daily budget.
    pub budget_y: Option<f64>,
    /// The daily budget as shown (`$5.00`), when there is one.
    pub budget: Option<String>,
}

/// Dollars as the page shows them: `$0.40`.
pub fn dollars(usd: f64) -> String {
    format!("${usd:.2}")
}

/// Draws `days` against `budget` (US dollars a day, when the repository has one): the scale runs from 0 to
/// a tenth above the larger of the costliest day and the budget (at least a cent), so the budget line is
/// always inside the chart.
pub fn chart(days: &[Day], budget: Option<f64>) -> Chart {
    let costliest = days.iter().map(|d| d.cost_usd).fold(0.0, f64::max);
    let max = (costliest.max(budget.unwrap_or(0.0)) * 1.1).max(0.01);
    let base = HEIGHT - BOTTOM;
    let span = base - TOP;
    let y = |usd: f64| round(base - span * (usd / max).clamp(0.0, 1.0));
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| Bar {
            x: round(LEFT + slot * i as f64 + slot * 0.15),
            y: y(d.cost_usd),
            width: round(slot * 0.7),
            height: round(base - y(d.cost_usd)),
            date: d.date.clone(),
            label: d.date.rsplit('-').next().unwrap_or_default().to_owned(),
            cost: dollars(d.cost_usd),
            over: budget.is_some_and(|b| d.cost_usd >= b),
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        bars,
        left: LEFT,
        base,
        top: TOP,
        top_label: dollars(max),
        budget_y: budget.map(y),
        budget: budget.map(dollars),
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bars_and_the_budget_line_fit_the_chart() {
        let days = vec![
            Day { date: "2026-12-06".into(), cost_usd: 0.0, sessions: 0 },
            Day { date: "2026-12-07".into(), cost_usd: 5.5, sessions: 2 },
        ];
        let c = chart(&days, Some(5.0));
        assert_eq!(c.bars.len(), 2);
        assert_eq!(c.bars[0].height, 0.0);
        assert_eq!(c.bars[0].label, "06");
        assert!(c.bars[1].over && !c.bars[0].over);
        let line = c.budget_y.unwrap();
        assert!(line > c.bars[1].y && line < c.base, "the budget line sits below the top of the costlier bar");
        assert_eq!(c.budget.as_deref(), Some("$5.00"));
        // Without a budget nor cost, the scale still has a top.
        let c = chart(&days[..1], None);
        assert_eq!(c.budget_y, None);
        assert_eq!(c.top_label, "$0.01");
    }
}
