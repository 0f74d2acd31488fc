//! Prompts, rendered with minijinja from the templates in `prompts/`.
//!
//! The built-in templates (`prompts/coding.md`, `follow-up.md`, `planning.md` and the partial `_context.md`)
//! are compiled in; a file of the same name in `agent.prompts_dir` replaces one. Every template is parsed and
//! rendered once with sample input at start ([`Prompts::load`]), with undefined variables an error, so a bad
//! template stops the start instead of a session.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The templates Foreman ships, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("coding.md", include_str!("../../prompts/coding.md")),
    ("follow-up.md", include_str!("../../prompts/follow-up.md")),
    ("planning.md", include_str!("../../prompts/planning.md")),
    ("_context.md", include_str!("../../prompts/_context.md")),
];

/// Repository instruction files read from the worktree, in this order, when present.
pub const INSTRUCTION_FILES: &[&str] = &["AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md"];

/// Largest instruction file put into a prompt, in bytes; longer ones are cut (and say so). Bounds the prompt.
const MAX_INSTRUCTION_BYTES: usize = 32 * 1024;

/// Which template a session uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// `coding.md`: resolve an issue.
    Coding,
    /// `follow-up.md`: address review feedback on a pull request.
    FollowUp,
    /// `planning.md`: write a plan, change nothing.
    Planning,
}

impl PromptKind {
    /// The template's file name.
    pub fn template(self) -> &'static str {
        match self {
            Self::Coding => "coding.md",
            Self::FollowUp => "follow-up.md",
            Self::Planning => "planning.md",
        }
    }
}

/// A person, and whether they have write access to the repository (their text is trusted only then).
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    /// The GitHub login.
    pub login: String,
    /// Whether the login has write (or higher) permission on the repository.
    pub can_write: bool,
}

/// A comment on the issue or pull request.
#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    /// Who wrote it.
    pub author: Person,
    /// Its Markdown body.
    pub body: String,
}

/// The issue a session works on.
#[derive(Clone, Debug, Serialize)]
pub struct IssueText {
    /// The issue number.
    pub number: u64,
    /// The title.
    pub title: String,
    /// The body (Markdown), empty when none.
    pub body: String,
    /// Who opened it.
    pub author: Person,
}

/// A repository instruction file found in the worktree.
#[derive(Clone, Debug, Serialize)]
pub struct InstructionFile {
    /// Its path relative to the repository root.
    pub path: String,
    /// Its content, cut at [`MAX_INSTRUCTION_BYTES`].
    pub content: String,
}

/// Everything a template can use.
#[derive(Clone, Debug, Serialize)]
pub struct PromptInput {
    /// `owner/name`.
    pub repo: String,
    /// The branch the agent works on.
    pub branch: String,
    /// The issue.
    pub issue: IssueText,
    /// Its comments, oldest first (for a follow-up: the review feedback).
    pub comments: Vec<Comment>,
    /// Who asked for the run (`/foreman run …`, a label, a board move).
    pub requester: String,
    /// The requester's instructions from `/foreman run <instructions>`, if any.
    pub instructions: Option<String>,
    /// The repository's instruction files.
    pub repository_instructions: Vec<InstructionFile>,
    /// The constitution's rules, one sentence each.
    pub constitution: Vec<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Why the previous attempt failed, when there was one.
    pub previous_failure: Option<String>,
}

impl PromptInput {
    fn sample() -> Self {
        let person = |login: &str, can_write| Person { login: login.into(), can_write };
        Self {
            repo: "octo/repo".into(),
            branch: "foreman/1-sample".into(),
            issue: IssueText { number: 1, title: "Sample".into(), body: "Body".into(), author: person("a", true) },
            comments: vec![Comment { author: person("b", false), body: "A comment".into() }],
            requester: "a".into(),
            instructions: Some("Do it".into()),
            repository_instructions: vec![InstructionFile { path: "AGENTS.md".into(), content: "Rules".into() }],
            constitution: vec!["A rule".into()],
            attempt: 2,
            previous_failure: Some("it failed".into()),
        }
    }
}

/// A template that failed to load or render.
#[derive(Debug, thiserror::Error)]
#[error("prompt template {name}: {detail}")]
pub struct PromptError {
    /// The template's name (or file).
    pub name: String,
    /// What is wrong, with line numbers from minijinja.
    pub detail: String,
}

/// The loaded, checked templates.
#[derive(Debug)]
pub struct Prompts {
    env: Environment<'static>,
}

impl Prompts {
    /// Loads the built-in templates, then every `*.md` in `dir` over them, and renders each with sample
    /// input. Errors name the template and the line.
    pub fn load(dir: Option<&Path>) -> Result<Self, PromptError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut sources: Vec<(String, String)> =
            BUILT_IN.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| PromptError { name: dir.display().to_string(), detail: e.to_string() })?;
            for entry in entries.flatten() {
                let path: PathBuf = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
                if !name.ends_with(".md") {
                    continue;
                }
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| PromptError { name: path.display().to_string(), detail: e.to_string() })?;
                sources.retain(|(n, _)| *n != name);
                sources.push((name, source));
            }
        }
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source).map_err(|e| PromptError { name, detail: describe(&e) })?;
        }
        let prompts = Self { env };
        let sample = PromptInput::sample();
        for kind in [PromptKind::Coding, PromptKind::FollowUp, PromptKind::Planning] {
            prompts.render(kind, &sample)?;
        }
        Ok(prompts)
    }

    /// Renders the template for `kind`.
    pub fn render(&self, kind: PromptKind, input: &PromptInput) -> Result<String, PromptError> {
        let name = kind.template();
        let template =
            self.env.get_template(name).map_err(|e| PromptError { name: name.into(), detail: describe(&e) })?;
        template
            .render(minijinja::value::Serde(input))
            .map_err(|e| PromptError { name: name.into(), detail: describe(&e) })
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// Reads the repository instruction files ([`INSTRUCTION_FILES`]) that exist in `worktree`.
pub fn read_instruction_files(worktree: &Path) -> Vec<InstructionFile> {
    INSTRUCTION_FILES
        .iter()
        .filter_map(|rel| {
            let bytes = std::fs::read(worktree.join(rel)).ok()?;
            let mut content = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_INSTRUCTION_BYTES)]).into_owned();
            if bytes.len() > MAX_INSTRUCTION_BYTES {
                content.push_str("\n[… cut: the file is longer]");
            }
            Some(InstructionFile { path: (*rel).to_owned(), content })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_carry_every_input() {
        let p = Prompts::load(None).unwrap();
        let text = p.render(PromptKind::Coding, &PromptInput::sample()).unwrap();
        for needle in [
            "Sample",
            "Body",
            "A comment",
            "trusted=\"false\"",
            "Do it",
            "AGENTS.md",
            "A rule",
            "attempt 2",
            "it failed",
            "foreman/1-sample",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn a_bad_template_fails_at_load_with_its_name_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("coding.md"), "ok\n{{ issue.title }\n").unwrap();
        let e = Prompts::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("coding.md") && e.contains("line 2"), "{e}");
        std::fs::write(dir.path().join("coding.md"), "{{ no_such_variable }}").unwrap();
        let e = Prompts::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("coding.md") && e.contains("undefined"), "{e}");
    }
}
