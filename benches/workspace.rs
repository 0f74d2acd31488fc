//! Preparing a session workspace for a 10,000-file repository: from a warm mirror (fetch, then an idle
//! worktree moved into place and switched to the session's branch, then released again) against a fresh
//! `git clone` of the same repository over `file://` (the pack protocol, as a network clone would use).
//! Run with `cargo bench --bench workspace`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use foreman::ids::{IssueNumber, RepoName};
use foreman::session::workspace::{Start, WorkspaceRequest, Workspaces};

/// The repository size the issue's budget is stated for.
const FILES: usize = 10_000;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn big_origin(root: &Path) -> PathBuf {
    let work = root.join("work");
    for i in 0..FILES {
        let d = work.join(format!("dir{:03}", i % 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("file{i:05}.txt")), format!("line {i}\n")).unwrap();
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "big"]);
    let bare = root.join("origin.git");
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    bare
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let origin = big_origin(dir.path());
    let url = format!("file://{}", origin.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = Workspaces::new(&dir.path().join("data"), 2).unwrap();
    let req = WorkspaceRequest {
        repo: RepoName::new("octo", "big").unwrap(),
        issue: IssueNumber(1),
        remote_url: url.clone(),
        auth: None,
        branch: "foreman/1-bench".into(),
        start: Start::DefaultBranch("main".into()),
    };
    // Warm the mirror once.
    let w = rt.block_on(ws.prepare(&req)).unwrap();
    rt.block_on(ws.remove(&w, &req.repo));

    let mut group = c.benchmark_group("workspace_10000_files");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("warm_mirror_prepare_and_remove", |b| {
        b.iter(|| {
            let w = rt.block_on(ws.prepare(&req)).unwrap();
            rt.block_on(ws.remove(&w, &req.repo));
        })
    });
    let clones = dir.path().join("clones");
    std::fs::create_dir_all(&clones).unwrap();
    group.bench_function("fresh_clone", |b| {
        b.iter(|| {
            let target = clones.join("c");
            git(&clones, &["clone", "-q", &url, target.to_str().unwrap()]);
            std::fs::remove_dir_all(&target).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
