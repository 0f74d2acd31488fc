//! Run order among runnable jobs: explicit priority, then the phase key from the title, then fewer failures,
//! then age. The store keeps queued jobs in an index tree whose keys sort in exactly
//! this order ([`OrderKey`]), so picking the next job reads the first key instead of sorting.

use serde::{Deserialize, Serialize};

/// The phase key parsed from an issue title, for phase-aware ordering of a project's tasks:
///
/// | title                          | key                       |
/// |--------------------------------|---------------------------|
/// | `META: Project Tracker`        | `Meta` (always first)     |
/// | `[AUTH-1.2] Implement login`   | `Phase { phase: 1, task: 2 }` |
/// | `1.2: Setup database`          | `Phase { phase: 1, task: 2 }` |
/// | `Phase 2.1 - Add tests`        | `Phase { phase: 2, task: 1 }` |
/// | `Task 1.5 API endpoints`       | `Phase { phase: 1, task: 5 }` |
/// | `ARK-123 something`            | `Id(123)` (a Linear-style id, by number) |
/// | `Fix bug in login`             | `None` (priority and age only) |
///
/// Keys order as the table reads: `Meta` < `Phase` (by phase, then task) < `Id` (by number) < `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhaseKey {
    /// A `META:` tracking task: runs first.
    Meta,
    /// Phase and task number; `Phase 2` alone is phase 2, task 0.
    Phase {
        /// The phase number.
        phase: u32,
        /// The task number within the phase.
        task: u32,
    },
    /// A Linear-style id such as `ARK-123`.
    Id {
        /// The id's number.
        number: u32,
    },
    /// No phase key in the title.
    None,
}

impl PhaseKey {
    /// Parses a title. Never fails: a title without a key is [`PhaseKey::None`]. Numbers beyond `u32` are
    /// ignored (the title then has no key).
    pub fn parse(title: &str) -> Self {
        let t = title.trim();
        if t.len() >= 5 && t[..5].eq_ignore_ascii_case("META:") {
            return PhaseKey::Meta;
        }
        // `[PREFIX-X.Y]` anywhere.
        let mut rest = t;
        while let Some(open) = rest.find('[') {
            rest = &rest[open + 1..];
            let Some(close) = rest.find(']') else { break };
            let inner = &rest[..close];
            if let Some((prefix, num)) = inner.rsplit_once('-')
                && !prefix.is_empty()
                && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && let Some((p, k)) = dotted(num).filter(|(_, rest)| rest.is_empty()).and_then(|(pk, _)| pk)
            {
                return PhaseKey::Phase { phase: p, task: k };
            }
        }
        // `X.Y:` at the start.
        if let Some((Some((p, k)), after)) = dotted(t)
            && after.starts_with(':')
        {
            return PhaseKey::Phase { phase: p, task: k };
        }
        // `Phase X.Y` or `Task X.Y`, as words, anywhere.
        for word in ["phase", "task"] {
            if let Some(key) = after_word(t, word) {
                return key;
            }
        }
        // A Linear-style id at the start: upper-case letters, '-', digits.
        if let Some((prefix, rest)) = t.split_once('-')
            && !prefix.is_empty()
            && prefix.chars().all(|c| c.is_ascii_uppercase())
        {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let next = rest[digits.len()..].chars().next();
            if !digits.is_empty()
                && next.is_none_or(|c| !c.is_ascii_alphanumeric())
                && let Ok(number) = digits.parse()
            {
                return PhaseKey::Id { number };
            }
        }
        PhaseKey::None
    }

    /// The key as three numbers that sort like the key: class, then two numbers.
    pub fn parts(self) -> (u8, u32, u32) {
        match self {
            PhaseKey::Meta => (0, 0, 0),
            PhaseKey::Phase { phase, task } => (1, phase, task),
            PhaseKey::Id { number } => (2, number, 0),
            PhaseKey::None => (3, 0, 0),
        }
    }

    /// The inverse of [`PhaseKey::parts`]; `None` for a class that does not exist.
    pub fn from_parts(class: u8, a: u32, b: u32) -> Option<Self> {
        Some(match class {
            0 => PhaseKey::Meta,
            1 => PhaseKey::Phase { phase: a, task: b },
            2 => PhaseKey::Id { number: a },
            3 => PhaseKey::None,
            _ => return None,
        })
    }
}

/// Parses `X.Y` or `X` at the start of `s`: `Some((Some((x, y)), rest))` when digits are there,
/// `Some((None, rest))` when they overflow, `None` when `s` does not start with a digit.
#[allow(clippy::type_complexity)]
fn dotted(s: &str) -> Option<(Option<(u32, u32)>, &str)> {
    let a: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    if a.is_empty() {
        return None;
    }
    let rest = &s[a.len()..];
    let (b, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let b = &r[..r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())];
            if b.is_empty() { ("", rest) } else { (b, &r[b.len()..]) }
        }
        None => ("", rest),
    };
    let parsed = match (a.parse::<u32>(), if b.is_empty() { Ok(0) } else { b.parse::<u32>() }) {
        (Ok(x), Ok(y)) => Some((x, y)),
        _ => None,
    };
    Some((parsed, rest))
}

/// Finds `word` (case-insensitive, at a word boundary) followed by spaces and `X.Y` or `X`.
fn after_word(title: &str, word: &str) -> Option<PhaseKey> {
    let lower = title.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(word) {
        let start = from + i;
        from = start + word.len();
        let before_ok = lower[..start].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
        let rest = &title[from..];
        let trimmed = rest.trim_start_matches(' ');
        if !before_ok || trimmed.len() == rest.len() {
            continue;
        }
        if let Some((Some((p, k)), after)) = dotted(trimmed)
            && after.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric())
        {
            return Some(PhaseKey::Phase { phase: p, task: k });
        }
    }
    None
}

/// A job's rank among the `priority_labels` (highest first): 0 for the first label. A job with several
/// priority labels takes the highest. Without one, it ranks as `default_priority`, or after every label
/// when `default_priority` is not among them. Labels compare case-insensitively; ranks stop at 255.
pub fn priority_rank(priority_labels: &[String], default_priority: &str, labels: &[String]) -> u8 {
    let position = |label: &str| priority_labels.iter().position(|p| p.eq_ignore_ascii_case(label));
    labels
        .iter()
        .filter_map(|l| position(l))
        .min()
        .or_else(|| position(default_priority))
        .unwrap_or(priority_labels.len())
        .min(u8::MAX as usize) as u8
}

/// The index key of a queued job: it sorts in run order. Big-endian fields, 30 bytes:
/// `priority rank u8 · phase class u8 · phase u32 · task u32 · counted failures u32 · enqueued at (unix
/// nanoseconds, u64) · sequence u64`. The sequence number is unique per job, so the order is
/// total; it is assigned once, so the order is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    /// Priority rank (0 highest).
    pub priority: u8,
    /// Phase key.
    pub phase: PhaseKey,
    /// Counted failures (agent, validation, infrastructure).
    pub failures: u32,
    /// When the job was first queued, unix nanoseconds.
    pub enqueued_nanos: u64,
    /// The job's sequence number, unique in the store.
    pub seq: u64,
}

/// Length of an encoded [`OrderKey`].
pub const ORDER_KEY_LEN: usize = 1 + 1 + 4 + 4 + 4 + 8 + 8;

impl OrderKey {
    /// Encodes the key so that byte order is run order.
    pub fn encode(&self) -> [u8; ORDER_KEY_LEN] {
        let (class, a, b) = self.phase.parts();
        let mut k = [0u8; ORDER_KEY_LEN];
        k[0] = self.priority;
        k[1] = class;
        k[2..6].copy_from_slice(&a.to_be_bytes());
        k[6..10].copy_from_slice(&b.to_be_bytes());
        k[10..14].copy_from_slice(&self.failures.to_be_bytes());
        k[14..22].copy_from_slice(&self.enqueued_nanos.to_be_bytes());
        k[22..30].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    /// Decodes a key written by [`OrderKey::encode`]; `None` when malformed.
    pub fn decode(k: &[u8]) -> Option<Self> {
        if k.len() != ORDER_KEY_LEN {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes(k[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(k[i..i + 8].try_into().expect("8 bytes"));
        Some(Self {
            priority: k[0],
            phase: PhaseKey::from_parts(k[1], u32_at(2), u32_at(6))?,
            failures: u32_at(10),
            enqueued_nanos: u64_at(14),
            seq: u64_at(22),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_parses() {
        let cases = [
            ("META: Project Tracker", PhaseKey::Meta),
            ("[AUTH-1.2] Implement login", PhaseKey::Phase { phase: 1, task: 2 }),
            ("1.2: Setup database", PhaseKey::Phase { phase: 1, task: 2 }),
            ("Phase 2.1 - Add tests", PhaseKey::Phase { phase: 2, task: 1 }),
            ("Task 1.5 API endpoints", PhaseKey::Phase { phase: 1, task: 5 }),
            ("ARK-123", PhaseKey::Id { number: 123 }),
            ("ARK-123: do it", PhaseKey::Id { number: 123 }),
            ("Fix bug in login", PhaseKey::None),
            ("meta: lower case", PhaseKey::Meta),
            ("Add [WEB-10.20] widget", PhaseKey::Phase { phase: 10, task: 20 }),
            ("phase 3 cleanup", PhaseKey::Phase { phase: 3, task: 0 }),
            ("Multitask 1.2 is not a task", PhaseKey::None),
            ("Version 1.2 is not a phase", PhaseKey::None),
            ("1.2 without colon", PhaseKey::None),
            ("[AUTH-99999999999.1] overflow", PhaseKey::None),
            ("", PhaseKey::None),
            ("[", PhaseKey::None),
            ("Task", PhaseKey::None),
        ];
        for (title, want) in cases {
            assert_eq!(PhaseKey::parse(title), want, "{title}");
        }
    }

    #[test]
    fn a_project_runs_in_phase_order() {
        let titles = [
            "[AUTH-2.1] Add password reset",
            "[AUTH-1.3] Validate login form",
            "[AUTH-1.1] Create login endpoint",
            "META: Authentication Project",
            "[AUTH-1.2] Add session handling",
        ];
        let mut keys: Vec<_> = titles.iter().map(|t| (PhaseKey::parse(t), *t)).collect();
        keys.sort();
        let order: Vec<_> = keys.iter().map(|(_, t)| *t).collect();
        assert_eq!(
            order,
            [
                "META: Authentication Project",
                "[AUTH-1.1] Create login endpoint",
                "[AUTH-1.2] Add session handling",
                "[AUTH-1.3] Validate login form",
                "[AUTH-2.1] Add password reset",
            ]
        );
    }

    #[test]
    fn priority_labels_rank_and_default() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = l(&["priority:critical", "priority:high", "priority:medium", "priority:low"]);
        let rank = |labels: &[&str]| priority_rank(&p, "priority:medium", &l(labels));
        assert_eq!(rank(&["priority:critical"]), 0);
        assert_eq!(rank(&["bug", "Priority:High"]), 1);
        assert_eq!(rank(&["bug"]), 2);
        assert_eq!(rank(&["priority:low", "priority:high"]), 1);
        assert_eq!(rank(&["priority:low"]), 3);
        assert_eq!(priority_rank(&p, "none", &l(&[])), 4);
    }

    #[test]
    fn order_keys_sort_as_the_rules_say_and_round_trip() {
        let k = |priority, phase, failures, enqueued_nanos, seq| OrderKey {
            priority,
            phase,
            failures,
            enqueued_nanos,
            seq,
        };
        let p = |phase, task| PhaseKey::Phase { phase, task };
        let ordered = [
            k(0, PhaseKey::None, 9, 9, 9),
            k(1, PhaseKey::Meta, 9, 9, 9),
            k(1, p(1, 2), 9, 9, 9),
            k(1, p(1, 10), 0, 0, 0),
            k(1, p(2, 0), 0, 9, 9),
            k(1, p(2, 0), 1, 0, 0),
            k(1, p(2, 0), 1, 5, 0),
            k(1, p(2, 0), 1, 5, 1),
            k(1, PhaseKey::Id { number: 4 }, 0, 0, 0),
            k(1, PhaseKey::None, 0, 0, 0),
        ];
        for w in ordered.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
            assert!(w[0].encode() < w[1].encode(), "{w:?}");
        }
        for key in ordered {
            assert_eq!(OrderKey::decode(&key.encode()), Some(key));
        }
    }
}
