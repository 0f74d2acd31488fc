//! The `[scheduler]` configuration table: defaults, the file, environment variables, and bad values.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error.

use foreman::config::Config;
use foreman::scheduler::SchedulerConfig;

#[test]
fn defaults_file_and_environment() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.scheduler, SchedulerConfig::default());
        assert_eq!(c.scheduler.claim_ttl_seconds, 1800);
        assert_eq!((c.scheduler.max_failures, c.scheduler.max_sessions, c.scheduler.max_sessions_per_repo), (3, 3, 1));

        jail.create_file(
            "f.toml",
            "[scheduler]\nmax_sessions = 8\npriority_labels = [\"P0\", \"P1\"]\ndefault_priority = \"P1\"\n",
        )?;
        jail.set_env("FOREMAN_MAX_SESSIONS_PER_INSTALLATION", "2");
        jail.set_env("FOREMAN_CLAIM_TTL_SECONDS", "600");
        let c = Config::load(Some("f.toml".as_ref())).map_err(|e| e.to_string())?;
        assert_eq!(c.scheduler.max_sessions, 8);
        assert_eq!(c.scheduler.max_sessions_per_installation, Some(2));
        assert_eq!(c.scheduler.claim_ttl_seconds, 600);
        assert_eq!(c.scheduler.priority_labels, ["P0", "P1"]);

        jail.set_env("FOREMAN_PRIORITY_LABELS", "urgent, soon ,later");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.scheduler.priority_labels, ["urgent", "soon", "later"]);
        Ok(())
    });
}

#[test]
fn bad_values_name_their_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FOREMAN_MAX_SESSIONS", "0");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("scheduler.max_sessions") && e.contains("FOREMAN_MAX_SESSIONS"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.create_file("f.toml", "[scheduler]\nmax_sesions = 2\n")?;
        let e = Config::load(Some("f.toml".as_ref())).unwrap_err().to_string();
        assert!(e.contains("scheduler.max_sesions"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.create_file("f.toml", "[scheduler]\nbackoff_min_seconds = 60\nbackoff_max_seconds = 30\n")?;
        let e = Config::load(Some("f.toml".as_ref())).unwrap_err().to_string();
        assert!(e.contains("backoff_max_seconds"), "{e}");
        Ok(())
    });
}
