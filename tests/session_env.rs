//! Foreman's secrets never reach the agent, even when they are in Foreman's own environment.
//! (Its own test binary: it sets process environment variables before anything else runs.)

mod session_support;

use std::time::Duration;

use foreman::session::{AgentConfig, Credentials, Verdict};
use session_support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_agent_environment_is_an_allowlist() {
    // SAFETY: this test binary has this one test, and no other thread exists yet that reads the environment.
    unsafe {
        std::env::set_var("GITHUB_WEBHOOK_SECRET", "whsec-must-not-leak");
        std::env::set_var("GITHUB_PRIVATE_KEY", "-----BEGIN PRIVATE KEY----- must-not-leak");
        std::env::set_var("FOREMAN_ADMIN_TOKEN", "admin-must-not-leak");
        std::env::set_var("SOME_UNLISTED_VARIABLE", "unlisted-must-not-leak");
        std::env::set_var("LISTED_VARIABLE", "listed-passes");
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "x\n")]);
    let config = AgentConfig {
        env_allow: vec!["LISTED_VARIABLE".into()],
        env: [("FIXED_VARIABLE".to_owned(), "fixed-passes".to_owned())].into(),
        ..command_config("env > env.txt; git add env.txt; git commit -qm env")
    };
    let runner = runner(&dir.path().join("data"), config, Credentials::default());
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        runner.run(spec(&origin, "env"), CancellationToken::new(), |_| {}),
    )
    .await
    .unwrap();
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    let mirror = runner.workspaces().mirror_path(&foreman::ids::RepoName::new("octo", "repo").unwrap());
    let env = git(&mirror, &["show", &format!("{}:env.txt", outcome.branch)]);
    assert!(!env.contains("must-not-leak"), "{env}");
    assert!(env.contains("LISTED_VARIABLE=listed-passes") && env.contains("FIXED_VARIABLE=fixed-passes"), "{env}");
    assert!(env.contains("PATH=") && env.contains("GIT_AUTHOR_NAME=foreman[bot]"), "{env}");

    // Naming a secret in the configuration is refused at start.
    let bad = AgentConfig { env_allow: vec!["GITHUB_PRIVATE_KEY".into()], ..AgentConfig::default() };
    let e = foreman::session::SessionRunner::new(&dir.path().join("d2"), bad, Credentials::default()).unwrap_err();
    assert!(e.to_string().contains("GITHUB_PRIVATE_KEY"), "{e}");
}
