//! The workflow file `foreman actions workflow` prints: what a repository commits (as
//! `.github/workflows/foreman-session.yml`) for its sessions to run on GitHub Actions runners.

/// Where Foreman's source is, for runners that build it.
pub const REPOSITORY: &str = "https://github.com/foreman-app/foreman";

/// The Claude Code CLI version the workflow installs for the `claude` backend (the one Foreman is tested
/// against).
pub const CLAUDE_CLI_VERSION: &str = "2.1.329";

/// The workflow for sessions of `backend` (`claude` or `command`): dispatched by Foreman with the inputs
/// `session_id`, `session_url` and `session_token`; installs Foreman unless it is on the runner's `PATH`
/// (self-hosted runners can bake it in), installs the Claude Code CLI for the `claude` backend unless it is
/// on `PATH`, and runs `foreman session --connect`. The job's token may read nothing (`permissions: {}`);
/// the agent's credential comes from the repository's secrets (`ANTHROPIC_API_KEY`).
pub fn text(backend: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
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
      # Builds Foreman {version} from source unless the runner has it (minutes: bake it into self-hosted
      # runner images, or cache ~/.cargo/bin).
      - name: Install Foreman
        run: command -v foreman >/dev/null || cargo install --locked --git {REPOSITORY} --tag v{version} foreman
{claude}      - name: Run the session
        env:
          FOREMAN_SESSION_URL: ${{{{ inputs.session_url }}}}
          FOREMAN_SESSION_TOKEN: ${{{{ inputs.session_token }}}}
          ANTHROPIC_API_KEY: ${{{{ secrets.ANTHROPIC_API_KEY }}}}
        run: foreman session --connect "$FOREMAN_SESSION_URL"
"#
    )
}
