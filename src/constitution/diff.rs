//! A session's change as git reports it: which files, how many lines, and every added line with its
//! number. Read by shelling out to Foreman's hardened git ([`crate::git`]) in the repository's mirror
//! (`git diff --name-status`, `--numstat`, `-U0`), comparing the base commit with the branch's head as
//! the mirror holds it: what is checked is what is pushed. Renames count as a deletion plus an addition,
//! so a file moved out of a protected path is caught.

use std::path::Path;

use crate::git::{DIFF_OPTIONS, Git, GitError, changed_files};

pub use crate::git::{ChangeKind, FileChange};

/// One added line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedLine {
    /// The file's path.
    pub path: String,
    /// 1-based line number in the new file.
    pub line: u32,
    /// The line's text, without the leading `+`.
    pub text: String,
}

/// A change between a base commit and `HEAD`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Every changed file.
    pub files: Vec<FileChange>,
    /// Every added line of every text file.
    pub added_lines: Vec<AddedLine>,
}

/// Why the change could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// git could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    /// git failed (e.g. the base commit does not exist); its stderr, trimmed.
    #[error("git {args} failed: {stderr}")]
    Git {
        /// The arguments git was given.
        args: String,
        /// What git said.
        stderr: String,
    },
}

impl Diff {
    /// Total lines added plus deleted.
    pub fn lines_changed(&self) -> u64 {
        self.files.iter().map(|f| f.added + f.deleted).sum()
    }

    /// Reads the change from `base` to `head` (commits, or anything `git diff` takes) in the repository
    /// whose git directory is `git_dir` (a bare mirror; a clone's `.git` works too).
    ///
    /// # Errors
    /// [`DiffError`] when git cannot run, `base` or `head` is unknown, or the output cannot be parsed.
    pub async fn read(git_dir: &Path, base: &str, head: &str) -> Result<Diff, DiffError> {
        let repo = Git::bare(git_dir);
        let files = changed_files(&repo, base, head).await?;
        // Explicit prefixes: a user's `diff.noprefix` or `diff.mnemonicPrefix` would change them. `--text`
        // and `--no-textconv`: a `.gitattributes` that marks files binary (or converts them) must not hide
        // added lines from the secret check.
        let patch_flags = ["-U0", "--text", "--src-prefix=a/", "--dst-prefix=b/"];
        let patch = repo.run(&[&["diff"][..], &patch_flags, &DIFF_OPTIONS, &[base, head]].concat()).await?;
        Ok(Diff { files, added_lines: parse_added_lines(&patch) })
    }
}

impl From<GitError> for DiffError {
    fn from(e: GitError) -> Self {
        DiffError::Git { args: e.args, stderr: e.stderr }
    }
}

/// `-U0` patch: added lines with their new line numbers from each hunk's `+start` header.
fn parse_added_lines(patch: &str) -> Vec<AddedLine> {
    let mut lines = Vec::new();
    let mut path: Option<String> = None;
    let mut in_hunk = false;
    let mut next = 0u32;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            in_hunk = false;
            path = None;
        } else if !in_hunk && let Some(p) = line.strip_prefix("+++ ") {
            // git ends the name with a tab when it contains a space (GNU diff's convention).
            // A name that is not `b/…` is kept as written rather than dropped: its lines are still checked.
            let name = unquote(p.strip_suffix('\t').unwrap_or(p));
            path = (name != "/dev/null").then(|| name.strip_prefix("b/").map_or(name.clone(), str::to_owned));
        } else if let Some(header) = line.strip_prefix("@@ ") {
            in_hunk = true;
            // `@@ -a[,b] +c[,d] @@`
            next = header
                .split(' ')
                .find_map(|f| f.strip_prefix('+'))
                .and_then(|f| f.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if in_hunk && let Some(text) = line.strip_prefix('+') {
            if let Some(path) = &path {
                lines.push(AddedLine { path: path.clone(), line: next, text: text.to_owned() });
            }
            next += 1;
        }
    }
    lines
}

/// Undoes git's C-style quoting of a path in a patch header (`"b/a\tb"`), which git applies to names
/// with control characters, `"` or `\` even with `core.quotePath=false`. Unquoted names come back as is.
fn unquote(name: &str) -> String {
    let Some(inner) = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) else {
        return name.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'a') => bytes.push(0x07),
            Some(b'b') => bytes.push(0x08),
            Some(b'f') => bytes.push(0x0c),
            Some(b'n') => bytes.push(b'\n'),
            Some(b'r') => bytes.push(b'\r'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'v') => bytes.push(0x0b),
            Some(d @ b'0'..=b'7') => {
                let mut value = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&next @ b'0'..=b'7') = chars.peek() {
                        value = value * 8 + u32::from(next - b'0');
                        chars.next();
                    }
                }
                bytes.push(u8::try_from(value).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => bytes.push(b'\\'),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_follow_hunk_headers() {
        let patch = "diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,0 +2,2 @@\n+one\n++two\n\
                     @@ -9 +11 @@\n-old\n+new\n";
        let lines = parse_added_lines(patch);
        let got: Vec<_> = lines.iter().map(|l| (l.path.as_str(), l.line, l.text.as_str())).collect();
        assert_eq!(got, vec![("x", 2, "one"), ("x", 3, "+two"), ("x", 11, "new")]);
    }

    #[test]
    fn quoted_names_are_unquoted() {
        assert_eq!(unquote("\"b/a\\tb\\\"c\\\\d\""), "b/a\tb\"c\\d");
        assert_eq!(unquote("\"b/caf\\303\\251\""), "b/café");
        assert_eq!(unquote("b/plain name"), "b/plain name");
    }
}
