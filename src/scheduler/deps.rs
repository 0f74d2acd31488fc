//! Dependencies written in an issue body: `Depends on #N`, `Blocked by #N`, `owner/repo#N`, or an issue URL.

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
/// resolves the short `#12` form. Issue 4: "A line in the issue body `Depends on #N` or `Blocked by #N`
/// (also `owner/repo#N`) keeps the job waiting until the dependency is closed."
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> IssueRef {
        let (repo, n) = s.split_once('#').unwrap();
        IssueRef { repo: repo.parse().unwrap(), issue: IssueNumber(n.parse().unwrap()) }
    }

    #[test]
    fn the_forms_of_issue_4() {
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
}
