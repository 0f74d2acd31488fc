//! The command line: version, help for every subcommand.

use std::process::Command;

fn foreman(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_foreman")).args(args).env_clear().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn version_and_help_for_every_subcommand() {
    let (code, text) = foreman(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(text.trim(), format!("foreman {}", env!("CARGO_PKG_VERSION")));

    let (code, top) = foreman(&["help"]);
    assert_eq!(code, 0);
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.contains(&"serve".to_owned()), "{top}");
    for sub in subcommands {
        let (code, text) = foreman(&["help", &sub]);
        assert_eq!(code, 0, "foreman help {sub}");
        assert!(text.contains(&format!("Usage: foreman {sub}")), "foreman help {sub}:\n{text}");
        // Every subcommand documents itself: a description line before the usage line.
        let description = text.lines().next().unwrap_or_default();
        assert!(!description.starts_with("Usage:") && description.len() > 10, "foreman help {sub} has no description");
    }
}

#[test]
fn a_usage_error_exits_2_and_says_what_to_do() {
    let (code, text) = foreman(&["serv"]);
    assert_eq!(code, 2);
    assert!(text.contains("serve"), "suggests the nearest subcommand: {text}");
    // The demo runs its own configuration: one given is refused rather than silently ignored.
    let (code, text) = foreman(&["demo", "--config", "mine.toml"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("does not read mine.toml"), "{text}");
}
