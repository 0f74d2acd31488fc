//! The constitution: a repository's `.github/foreman.toml` governance rules. Read and validated
//! ([`load`]), merged over the organisation's and Foreman's defaults with each value's origin, held to the
//! server's agent limits ([`ceilings`]: a file can only tighten them), enforced
//! on a session's change before the push ([`mod@enforce`]), budgets checked ([`budget`]), shown and put
//! into the prompt ([`render`]), and started from a template ([`templates`]). Every key is documented
//! in `docs/constitution.md`.
//!
//! Fetching the files (through the GitHub client, with ETag caching) is [`fetch`]; reporting errors,
//! checking pull requests that change the file, and the `/foreman constitution` commands are [`github`].
//! Everything else here is pure or works on a local git work tree.

pub mod budget;
pub mod ceilings;
pub mod check;
pub mod commands;
pub mod diff;
pub mod enforce;
pub mod fetch;
pub mod github;
pub mod keys;
pub mod load;
pub mod render;
pub mod schema;
pub mod templates;

use std::io::Write as _;
use std::process::ExitCode;

pub use self::budget::{BudgetVerdict, Spent, Usage, check_budget, start_of_utc_day};
pub use self::ceilings::Ceilings;
pub use self::commands::CommandOutcome;
pub use self::diff::{Diff, DiffError};
pub use self::enforce::{Change, Decision, Rule, Violation, check_diff, enforce};
pub use self::fetch::{FetchError, Loaded, load as load_from_github};
pub use self::load::{Capped, ConstitutionError, Effective, Origin, PATH, merge, parse, parse_all};
pub use self::render::{
    CheckRunOutput, check_run_output, decision_markdown, effective_markdown, errors_list, errors_markdown,
    prompt_markdown,
};
pub use self::schema::{AgentOverrides, Constitution, Limits, RequiredCommand, Rules, Tdd, Triggers};
pub use self::templates::Template;

/// `foreman constitution …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConstitutionCommand {
    /// Print a starter `.github/foreman.toml` to stdout: `foreman constitution init [TEMPLATE]`, the same
    /// words as the comment `/foreman constitution init [template]`.
    Init {
        /// The kind of project (`generic` when not given).
        #[arg(value_enum, conflicts_with = "flag")]
        template: Option<Template>,
        /// The same, as a flag (`--template rust`), as earlier versions took it; also accepted in comments.
        #[arg(long = "template", value_enum, id = "flag", value_name = "TEMPLATE")]
        flag: Option<Template>,
    },
}

/// Runs `foreman constitution …`. Exit code 0, or 1 when stdout cannot be written.
pub fn cli_main(command: ConstitutionCommand) -> ExitCode {
    match command {
        ConstitutionCommand::Init { template, flag } => {
            let template = template.or(flag).unwrap_or(Template::Generic);
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(template.text().as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
    }
}
