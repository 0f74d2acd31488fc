//! Dependencies: the [`IssueRef`] a job waits on, the ones an issue body declares (`Depends on #N`, `Blocked
//! by #N`, `owner/repo#N`, or an issue URL), GitHub's own "blocked by" links ([`LinkChange`], kept in
//! [`super::Job::blocked_by`]), how the two make one list ([`merge`]), and the dependency-cycle rule
//! ([`find_cycle`]).

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{IssueNumber, RepoName};

/// An issue somewhere on GitHub: repository and number. Serialised as `owner/repo#N`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IssueRef {
    /// The repository.
    pub repo: RepoName,
    /// The issue number.
    pub issue: IssueNumber,
}

impl fmt::Display for IssueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repo, self.issue)
    }
}

/// The phrases that introduce dependencies, compared case-insensitively.
const PHRASES: [&str; 3] = ["depends on", "blocked by", "depends upon"];

/// The dependencies an issue body declares, in order of appearance, without duplicates and without the
/// issue itself.
///
/// A line declares dependencies when it contains `Depends on` or `Blocked by` (any case); every reference
/// after the phrase on that line counts: `#12`, `owner/repo#12`, or
/// `https://github.com/owner/repo/issues/12`. Lines inside fenced code blocks are skipped. `this_repo`
/// resolves the short `#12` form. Such a line keeps the job waiting until the dependency is closed.
pub fn parse_dependencies(body: &str, this_repo: &RepoName, this_issue: IssueNumber) -> Vec<IssueRef> {
    let mut out: Vec<IssueRef> = Vec::new();
    let mut fenced = false;
    for line in body.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let Some(at) = PHRASES.iter().filter_map(|p| lower.find(p).map(|i| i + p.len())).min() else { continue };
        for r in references(&line[at..], this_repo) {
            let itself = r.repo == *this_repo && r.issue == this_issue;
            if !itself && !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Every issue reference in `text`.
fn references(text: &str, this_repo: &RepoName) -> Vec<IssueRef> {
    let mut out = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '[' | ']')) {
        let token = token.trim_end_matches(['.', ':']);
        if let Some(r) = url_ref(token).or_else(|| hash_ref(token, this_repo)) {
            out.push(r);
        }
    }
    out
}

fn number(s: &str) -> Option<IssueNumber> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n > 0).map(IssueNumber)
}

fn hash_ref(token: &str, this_repo: &RepoName) -> Option<IssueRef> {
    let (repo, n) = token.split_once('#')?;
    let issue = number(n)?;
    let repo = if repo.is_empty() { this_repo.clone() } else { repo.parse().ok()? };
    Some(IssueRef { repo, issue })
}

fn url_ref(token: &str) -> Option<IssueRef> {
    let rest = token.strip_prefix("https://github.com/").or_else(|| token.strip_prefix("http://github.com/"))?;
    let mut parts = rest.split('/');
    let (owner, name, kind, n) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if kind != "issues" {
        return None;
    }
    Some(IssueRef { repo: RepoName::new(owner, name).ok()?, issue: number(n.split(['#', '?']).next()?)? })
}

/// The dependencies of an issue: the ones its body declares, then GitHub's "blocked by" links not already
/// among them, never the issue itself (`this`). Issues are compared by their key (repository names in any
/// case).
pub fn merge(declared: &[IssueRef], blocked_by: &[IssueRef], this: &IssueRef) -> Vec<IssueRef> {
    let key = |r: &IssueRef| super::issue_key(&r.repo, r.issue);
    let mut out: Vec<IssueRef> = Vec::with_capacity(declared.len() + blocked_by.len());
    for r in declared.iter().chain(blocked_by) {
        if key(r) != key(this) && !out.iter().any(|o| key(o) == key(r)) {
            out.push(r.clone());
        }
    }
    out
}

/// A change to an issue's "blocked by" links on GitHub, as a webhook or a read tells Foreman.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", content = "issues", rename_all = "snake_case")]
pub enum LinkChange {
    /// `blocked_by_added` (or `blocking_added` seen from the blocker): one more blocker.
    Add(IssueRef),
    /// `blocked_by_removed` (or `blocking_removed`): one blocker less.
    Remove(IssueRef),
    /// The whole list as `GET …/dependencies/blocked_by` reads it (at enqueue, at reconciliation).
    Set(Vec<IssueRef>),
}

impl LinkChange {
    /// Applies the change to `links`; returns whether they changed. Issues are compared by their key.
    pub fn apply(&self, links: &mut Vec<IssueRef>) -> bool {
        let key = |r: &IssueRef| super::issue_key(&r.repo, r.issue);
        match self {
            LinkChange::Add(r) if !links.iter().any(|l| key(l) == key(r)) => {
                links.push(r.clone());
                true
            }
            LinkChange::Add(_) => false,
            LinkChange::Remove(r) => {
                let before = links.len();
                links.retain(|l| key(l) != key(r));
                links.len() != before
            }
            LinkChange::Set(all) => {
                let same = all.len() == links.len() && all.iter().all(|r| links.iter().any(|l| key(l) == key(r)));
                if !same {
                    links.clone_from(all);
                }
                !same
            }
        }
    }
}

/// Looks for a cycle of waiting jobs through `start`: `Some(path)` with `start` first and last.
///
/// `waiting_on(issue)` answers the open dependencies of the issue's job when that job waits on them
/// (placed waiting), and `None` when it has no job or does not wait: only waiting jobs can close a cycle.
/// Depth-first; issues are compared by their key (repository names in any case). The graphs are small (a
/// job's declared dependencies), so each issue is asked about at most once.
pub fn find_cycle<E>(
    start: &IssueRef,
    mut waiting_on: impl FnMut(&IssueRef) -> Result<Option<Vec<IssueRef>>, E>,
) -> Result<Option<Vec<IssueRef>>, E> {
    let mut stack: Vec<(IssueRef, Vec<IssueRef>)> = vec![(start.clone(), vec![start.clone()])];
    let start_key = super::issue_key(&start.repo, start.issue);
    let mut seen = HashSet::new();
    while let Some((node, path)) = stack.pop() {
        let Some(deps) = waiting_on(&node)? else { continue };
        for dep in deps {
            let dep_key = super::issue_key(&dep.repo, dep.issue);
            if dep_key == start_key {
                let mut cycle = path.clone();
                cycle.push(start.clone());
                return Ok(Some(cycle));
            }
            if seen.insert(dep_key) {
                let mut p = path.clone();
                p.push(dep.clone());
                stack.push((dep, p));
            }
        }
    }
    Ok(None)
}

/// Why the jobs on `cycle` (as [`find_cycle`] returns it) are stuck: `dependency cycle: a#1 → b#2 → a#1`.
pub fn cycle_reason(cycle: &[IssueRef]) -> String {
    format!("dependency cycle: {}", cycle.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> IssueRef {
        let (repo, n) = s.split_once('#').unwrap();
        IssueRef { repo: repo.parse().unwrap(), issue: IssueNumber(n.parse().unwrap()) }
    }

    #[test]
    fn the_declared_forms_parse() {
        let here: RepoName = "o/r".parse().unwrap();
        let body = "Intro mentions #99 which is not a dependency.\n\
                    Depends on #3\n\
                    - blocked by other/lib#7, #4 and https://github.com/x/y/issues/12.\n\
                    ```\nDepends on #100\n```\n\
                    Depends on #3 (again) and #5 itself\n\
                    depends upon #0 and #abc";
        let got = parse_dependencies(body, &here, IssueNumber(5));
        assert_eq!(got, vec![r("o/r#3"), r("other/lib#7"), r("o/r#4"), r("x/y#12")]);
        assert_eq!(r("o/r#3").to_string(), "o/r#3");
    }

    #[test]
    fn links_merge_with_the_declared_and_change_one_at_a_time() {
        let this = r("o/r#5");
        let merged = merge(&[r("o/r#3"), r("x/y#1")], &[r("O/R#3"), r("o/r#4"), r("o/r#5")], &this);
        assert_eq!(merged, vec![r("o/r#3"), r("x/y#1"), r("o/r#4")]);
        let mut links = vec![];
        assert!(LinkChange::Add(r("o/r#3")).apply(&mut links));
        assert!(!LinkChange::Add(r("O/r#3")).apply(&mut links));
        assert!(LinkChange::Set(vec![r("o/r#3"), r("a/b#2")]).apply(&mut links));
        assert!(!LinkChange::Set(vec![r("a/b#2"), r("o/r#3")]).apply(&mut links));
        assert!(LinkChange::Remove(r("o/R#3")).apply(&mut links));
        assert!(!LinkChange::Remove(r("o/r#3")).apply(&mut links));
        assert_eq!(links, vec![r("a/b#2")]);
    }

    #[test]
    fn cycles_are_found_through_waiting_jobs_only() {
        use std::collections::HashMap;
        let graph: HashMap<IssueRef, Vec<IssueRef>> = HashMap::from([
            (r("o/r#1"), vec![r("o/r#2")]),
            (r("o/r#2"), vec![r("O/R#3"), r("o/r#9")]),
            (r("o/r#3"), vec![r("o/r#1")]),
            (r("o/r#4"), vec![r("o/r#5")]),
        ]);
        let lookup = |i: &IssueRef| -> Result<_, ()> {
            let key = crate::job::issue_key(&i.repo, i.issue);
            Ok(graph.iter().find(|(k, _)| crate::job::issue_key(&k.repo, k.issue) == key).map(|(_, v)| v.clone()))
        };
        let cycle = find_cycle(&r("o/r#1"), lookup).unwrap().unwrap();
        assert_eq!(cycle, vec![r("o/r#1"), r("o/r#2"), r("O/R#3"), r("o/r#1")]);
        assert_eq!(cycle_reason(&cycle), "dependency cycle: o/r#1 → o/r#2 → O/R#3 → o/r#1");
        assert_eq!(find_cycle(&r("o/r#4"), lookup).unwrap(), None);
    }
}
