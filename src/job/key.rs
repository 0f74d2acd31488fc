//! Keys and times as the job store orders them: the issue key, and times as unix nanoseconds.
//!
//! An issue key is the lower-cased `owner/name`, a zero byte, and the issue number as a big-endian u64
//! (GitHub compares repository names case-insensitively), so keys of one repository sort together and by
//! number. Stores keep these bytes, so they are part of the on-disk format.

use time::OffsetDateTime;

use super::IssueRef;
use crate::ids::{IssueNumber, RepoName};

/// Unix nanoseconds of `t`, clamped to u64 (times before 1970 become 0).
pub fn nanos(t: OffsetDateTime) -> u64 {
    t.unix_timestamp_nanos().clamp(0, u64::MAX as i128) as u64
}

/// The inverse of [`nanos`].
pub fn from_nanos(n: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(n as i128).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The store key of an issue: lower-cased `owner/name`, a zero byte, the number as u64 big-endian.
pub fn issue_key(repo: &RepoName, issue: IssueNumber) -> Vec<u8> {
    let mut k = repo_prefix(repo);
    k.extend_from_slice(&issue.0.to_be_bytes());
    k
}

/// The prefix every issue key of `repo` starts with: lower-cased `owner/name` and a zero byte.
pub fn repo_prefix(repo: &RepoName) -> Vec<u8> {
    let mut k = Vec::with_capacity(repo.owner().len() + repo.name().len() + 10);
    k.extend(repo.owner().bytes().map(|b| b.to_ascii_lowercase()));
    k.push(b'/');
    k.extend(repo.name().bytes().map(|b| b.to_ascii_lowercase()));
    k.push(0);
    k
}

/// The repository part (with its zero byte) of an issue key.
pub fn key_repo_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// The repository of an issue key as the concurrency limits name it: lower-cased `owner/name`.
pub fn key_repo(key: &[u8]) -> String {
    let prefix = key_repo_prefix(key);
    String::from_utf8_lossy(&prefix[..prefix.len().saturating_sub(1)]).into_owned()
}

/// Decodes an issue key back into a reference (lower-cased repository name); `None` when malformed.
pub fn decode_issue_key(k: &[u8]) -> Option<IssueRef> {
    let split = k.len().checked_sub(9)?;
    if k[split] != 0 {
        return None;
    }
    let repo = std::str::from_utf8(&k[..split]).ok()?.parse().ok()?;
    let issue = IssueNumber(u64::from_be_bytes(k[split + 1..].try_into().ok()?));
    Some(IssueRef { repo, issue })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_ignore_case_sort_by_number_and_decode() {
        let r: RepoName = "Octo/Repo".parse().unwrap();
        let k = issue_key(&r, IssueNumber(7));
        assert_eq!(k, issue_key(&"octo/repo".parse().unwrap(), IssueNumber(7)));
        assert!(k < issue_key(&r, IssueNumber(300)));
        assert_eq!(key_repo(&k), "octo/repo");
        assert_eq!(key_repo_prefix(&k), &repo_prefix(&r)[..]);
        let back = decode_issue_key(&k).unwrap();
        assert_eq!((back.repo.to_string(), back.issue), ("octo/repo".to_owned(), IssueNumber(7)));
        assert_eq!(decode_issue_key(b"short"), None);
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(from_nanos(nanos(t)), t);
    }
}
