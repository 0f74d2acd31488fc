//! The workflow file `foreman actions workflow` prints: what a repository commits (as
//! `.github/workflows/foreman-session.yml`) for its sessions to run on GitHub Actions runners.

/// The Claude Code CLI version the workflow installs for the `claude` backend (the one Foreman is tested
/// against).
pub const CLAUDE_CLI_VERSION: &str = "2.1.329";

/// The workflow for sessions of `backend` (`claude` or `command`): dispatched by Foreman with the inputs
/// `session_id`, `session_url` and `session_token`; installs Foreman unless it is on the runner's `PATH`
/// (self-hosted runners can bake it in), installs the Claude Code CLI for the `claude` backend unless it is
/// on `PATH`, and runs `foreman session --connect`. The job's token may read nothing (`permissions: {}`);
/// the agent's credential comes from the repository's secrets (`ANTHROPIC_API_KEY`).
///
/// `source`: the git repository a runner without `foreman` builds it from (`cargo install --git`, at the tag
/// `v<this version>`). `None`: such a runner fails the step with an error saying what to do, since Foreman
/// publishes no build of its own to download.
pub fn text(backend: &str, source: Option<&str>) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let install = match source {
        Some(url) => format!(
            r#"      # Builds Foreman {version} from source unless the runner has it (minutes: bake it into self-hosted
      # runner images, or cache ~/.cargo/bin).
      - name: Install Foreman
        run: command -v foreman >/dev/null || cargo install --locked --git '{url}' --tag v{version} foreman
"#,
            url = url.replace('\'', "")
        ),
        None => r#"      # Foreman must be on the runner's PATH: bake it into the runner's image, or print this workflow
      # again with `foreman actions workflow --source <git URL>` to build it here.
      - name: Check for Foreman
        run: command -v foreman >/dev/null || { echo "::error::foreman is not on this runner's PATH (docs/actions.md)"; exit 1; }
"#
        .to_owned(),
    };
    let claude = if backend == "claude" {
        format!(
            r#"      - name: Install the Claude Code CLI
        run: command -v claude >/dev/null || npm install --global @anthropic-ai/claude-code@{CLAUDE_CLI_VERSION}
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"# Runs one Foreman session on a GitHub Actions runner. Foreman dispatches it for each session and is
# the only writer: this job's token may read nothing, the agent's changes go back to Foreman as a git
# bundle, and Foreman checks them and pushes. Printed by `foreman actions workflow` (see docs/actions.md).
name: Foreman session
run-name: Foreman session ${{{{ inputs.session_id }}}}
on:
  workflow_dispatch:
    inputs:
      session_id:
        description: The session's id
        required: true
      session_url:
        description: Where the runner reaches Foreman for this session
        required: true
      session_token:
        description: The session's one-time token (exchanged at once for one no log shows)
        required: true
permissions: {{}}
jobs:
  session:
    runs-on: ubuntu-latest
    timeout-minutes: 90
    steps:
{install}{claude}      - name: Run the session
        env:
          FOREMAN_SESSION_URL: ${{{{ inputs.session_url }}}}
          FOREMAN_SESSION_TOKEN: ${{{{ inputs.session_token }}}}
          ANTHROPIC_API_KEY: ${{{{ secrets.ANTHROPIC_API_KEY }}}}
        run: foreman session --connect "$FOREMAN_SESSION_URL"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn without_a_source_a_runner_without_foreman_fails_saying_what_to_do() {
        let workflow = text("command", None);
        assert!(workflow.contains("::error::foreman is not on this runner's PATH"), "{workflow}");
        assert!(!workflow.contains("cargo install"), "{workflow}");
        assert!(!workflow.contains("claude-code"), "the command backend installs no Claude CLI: {workflow}");
    }

    #[test]
    fn with_a_source_a_runner_builds_this_version_from_it() {
        let workflow = text("claude", Some("https://example.com/it's/foreman"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            workflow
                .contains(&format!("cargo install --locked --git 'https://example.com/its/foreman' --tag v{version}")),
            "{workflow}"
        );
        assert!(workflow.contains("@anthropic-ai/claude-code@"), "{workflow}");
    }
}
