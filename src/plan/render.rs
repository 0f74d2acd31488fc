//! The plan comment: the plan as a table on the planned issue, with the plan itself in a hidden marker
//! that `/foreman approve` reads back (from a comment by Foreman's bot only).

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{MAX_PLAN_BYTES, Plan, PlanError};
use crate::ids::{IssueNumber, RepoName};
use crate::markers;

/// The longest comment GitHub accepts, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// The plan comment's heading, for `#issue`.
pub fn heading(issue: IssueNumber) -> String {
    format!("### 📝 Foreman's plan for #{issue}")
}

/// The plan comment on `repo#issue`: its marker ([`markers::plan`]) on the first line, the heading, the
/// summary, a table (key, title, phase, blocked by, and the issue when `created` names one for the key), how
/// to approve it, and the plan in a [`markers::plan_data`] marker. Refused when longer than GitHub takes.
pub fn comment(
    repo: &RepoName,
    issue: IssueNumber,
    plan: &Plan,
    created: &BTreeMap<String, IssueNumber>,
) -> Result<String, PlanError> {
    let mut out = format!("{}\n{}\n\n{}\n\n", markers::plan(repo, issue), heading(issue), plan.summary.trim());
    out.push_str("| key | title | phase | blocked by | issue |\n|---|---|---|---|---|\n");
    for t in &plan.tasks {
        let blocked = if t.blocked_by.is_empty() { "—".to_owned() } else { t.blocked_by.join(", ") };
        let made = created.get(&t.key).map_or_else(|| "—".to_owned(), |n| format!("#{n}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            t.key,
            cell(&t.title),
            t.phase.as_deref().unwrap_or("—"),
            blocked,
            made
        ));
    }
    let new = plan.tasks.iter().filter(|t| !created.contains_key(&t.key)).count();
    out.push_str(&format!(
        "\n{} task{} ({} new). `/foreman approve` creates the new ones as sub-issues of #{issue}, each \
         \"blocked by\" its blockers; `/foreman plan` again proposes a revision.\n\n",
        plan.tasks.len(),
        if plan.tasks.len() == 1 { "" } else { "s" },
        new
    ));
    out.push_str(&markers::plan_data(&encode(plan, created)));
    if out.chars().count() > MAX_COMMENT_CHARS {
        return Err(PlanError::TooLongToPost(out.chars().count()));
    }
    Ok(out)
}

/// A table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// What the plan comment carries: the plan, and the issue each task became at the last approval.
#[derive(serde::Serialize, serde::Deserialize)]
struct Carried {
    plan: Plan,
    #[serde(default)]
    created: BTreeMap<String, u64>,
}

/// The plan and its created issues as the comment carries them: JSON, LZ4-compressed (size prepended),
/// URL-safe base64.
pub fn encode(plan: &Plan, created: &BTreeMap<String, IssueNumber>) -> String {
    let carried = Carried { plan: plan.clone(), created: created.iter().map(|(k, n)| (k.clone(), n.0)).collect() };
    let json = serde_json::to_vec(&carried).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(lz4_flex::compress_prepend_size(&json))
}

/// The plan a comment's [`markers::plan_data`] carries and the issues its tasks became, when it decodes (at
/// most [`MAX_PLAN_BYTES`]).
pub fn decode(body: &str) -> Option<(Plan, BTreeMap<String, IssueNumber>)> {
    let data = markers::parse_plan_data(body)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data).ok()?;
    let size = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if size > MAX_PLAN_BYTES {
        return None;
    }
    let json = lz4_flex::decompress_size_prepended(&bytes).ok()?;
    let carried: Carried = serde_json::from_slice(&json).ok()?;
    Some((carried.plan, carried.created.into_iter().map(|(k, n)| (k, IssueNumber(n))).collect()))
}
