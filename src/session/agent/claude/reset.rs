//! Reading usage-limit messages and their reset times.
//!
//! The wordings are the ones collected in `vendor/agents/claude-code/error-texts.md` §1, from CLI 1.0.31
//! to 2.1.329: `Claude AI usage limit reached|<epoch>`, `Claude usage limit reached. Your limit will reset at
//! 5pm (Europe/Warsaw).`, `5-hour limit reached ∙ resets 12pm`, `You've hit your limit - resets Feb 7, 11am
//! (Asia/Seoul)`, `You've hit your 5-hour limit · resets 2:26am (UTC)`, and the API spend limit `You will
//! regain access on 2026-04-01 at 00:00 UTC.` The structured `resetsAt` epoch is preferred where the stream
//! has it ([`super::stream::Transcript`]); these texts are the fallback.

use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use regex::Regex;

static EPOCH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\|\s*(\d{9,12})\b").unwrap());
static REGAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)regain access on (\d{4})-(\d{2})-(\d{2}) at (\d{1,2}):(\d{2})\s*UTC").unwrap());
static RESETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\breset(?:s)?(?:\s+at)?\s+(?:([a-z]{3,9})\.?\s+(\d{1,2}),?\s*(?:at\s+)?)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)(?:\s*\(([^)]+)\))?",
    )
    .unwrap()
});
static HIT_YOUR_LIMIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)you['’]ve hit your [a-z0-9 -]*limit|\d+[- ]hour limit reached").unwrap());

/// Whether `text` is one of the subscription (or API spend) usage-limit messages, as opposed to a plain
/// API rate limit ("This request would exceed your account's rate limit").
pub fn is_usage_limit_text(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("usage limit reached")
        || lower.contains("reached your specified api usage limits")
        || HIT_YOUR_LIMIT.is_match(text)
}

/// The reset time written in `text`, resolved against `now`. A clock time without a date is the next such
/// time after `now`; a date without a year is this year's (or next year's, once passed). The zone in
/// parentheses wins over `tz` (the zone the CLI ran in, which is Foreman's: `TZ` is passed through).
/// `None` when no reset time can be read.
pub fn parse_reset(text: &str, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    if let Some(c) = EPOCH.captures(text) {
        return Timestamp::from_second(c[1].parse().ok()?).ok();
    }
    if let Some(c) = REGAIN.captures(text) {
        let date = Date::new(c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?).ok()?;
        let dt = date.at(c[4].parse().ok()?, c[5].parse().ok()?, 0, 0);
        return dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    let c = RESETS.captures(text)?;
    let zone = match c.get(6) {
        Some(name) => TimeZone::get(name.as_str().trim()).ok()?,
        None => tz.clone(),
    };
    let mut hour: i8 = c[3].parse().ok()?;
    let minute: i8 = c.get(4).map_or(Some(0), |m| m.as_str().parse().ok())?;
    if !(1..=12).contains(&hour) || !(0..60).contains(&minute) {
        return None;
    }
    let pm = c[5].eq_ignore_ascii_case("pm");
    hour = match (hour, pm) {
        (12, false) => 0,
        (12, true) => 12,
        (h, true) => h + 12,
        (h, false) => h,
    };
    let today = now.to_zoned(zone.clone()).date();
    let at = |date: Date| date.at(hour, minute, 0, 0).to_zoned(zone.clone()).ok().map(|z| z.timestamp());
    match (c.get(1), c.get(2)) {
        (Some(month), Some(day)) => {
            let month = month_number(month.as_str())?;
            let day: i8 = day.as_str().parse().ok()?;
            let this_year = at(Date::new(today.year(), month, day).ok()?)?;
            // A date more than a day behind `now` means next year's (the CLI never shows a past reset).
            if this_year.as_second() + 86_400 < now.as_second() {
                at(Date::new(today.year() + 1, month, day).ok()?)
            } else {
                Some(this_year)
            }
        }
        _ => {
            let first = at(today)?;
            if first > now { Some(first) } else { at(today.tomorrow().ok()?) }
        }
    }
}

fn month_number(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let prefix = name.get(..3)?.to_lowercase();
    MONTHS.iter().position(|m| *m == prefix).map(|i| i as i8 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn every_recorded_wording_is_a_usage_limit_with_a_reset() {
        // 2026-11-20T23:26:07Z is when the 2.1.329 capture was made; the reset epoch in it is 1795227967.
        let now = ts("2026-11-20T23:26:07Z");
        let utc = TimeZone::UTC;
        let cases: &[(&str, Option<&str>)] = &[
            ("Claude AI usage limit reached|1753441200", Some("2025-07-25T11:00:00Z")),
            ("Claude usage limit reached. Your limit will reset at 5pm (Europe/Warsaw).", Some("2026-11-21T16:00:00Z")),
            (
                "⎿  Claude usage limit reached. Your limit will reset at 9am (America/Chicago).",
                Some("2026-11-21T15:00:00Z"),
            ),
            ("5-hour limit reached ∙ resets 12pm", Some("2026-11-21T12:00:00Z")),
            ("You've hit your limit - resets Feb 7, 11am (Asia/Seoul)/login to switch", Some("2027-02-07T02:00:00Z")),
            ("You've hit your session limit · resets 12:50am (America/Los_Angeles)", Some("2026-11-21T08:50:00Z")),
            ("You've hit your session limit · resets 3:45pm", Some("2026-11-21T15:45:00Z")),
            ("You've hit your 5-hour limit · resets 2:26am (UTC)", Some("2026-11-21T02:26:00Z")),
            ("You've hit your weekly limit · resets 9:26pm (America/New_York)", Some("2026-11-21T02:26:00Z")),
            (
                "You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC.",
                Some("2026-04-01T00:00:00Z"),
            ),
            ("Usage limit reached", None),
        ];
        for (text, want) in cases {
            assert!(is_usage_limit_text(text), "{text}");
            assert_eq!(parse_reset(text, now, &utc), want.map(ts), "{text}");
        }
    }

    #[test]
    fn plain_rate_limits_and_overloads_are_not_usage_limits() {
        for text in [
            "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.",
            "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment.",
            "Invalid API key · Fix external API key",
        ] {
            assert!(!is_usage_limit_text(text), "{text}");
        }
    }
}
