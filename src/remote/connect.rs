//! `foreman session --connect <session URL>`: the runner's side of a remote session. With the session
//! token from [`TOKEN_ENV`] it fetches the spec and the bundle of the session's branch, clones it into a
//! temporary directory, runs the agent with the same backends and limits as Foreman runs locally (its
//! credential from this machine's environment, e.g. `ANTHROPIC_API_KEY` from the workflow's secrets),
//! streams the agent's events and session log to Foreman, commits what the agent left, and uploads the
//! branch as a git bundle with the result. Uploads are retried with backoff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::protocol::{Connected, Event, RemoteResult, RemoteSpec};
use crate::executor::{Mounts, NetworkAccess};
use crate::git::Git;
use crate::session::{self, AgentRun, PLAN_FILE, Progress, PromptKind};

pub use super::protocol::TOKEN_ENV;

/// How often the runner sends what it has (events, log lines).
const SEND_EVERY: Duration = Duration::from_millis(500);

/// Why a remote session could not be run or handed back.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A request to Foreman failed (after retries), or Foreman refused it.
    #[error("{what}: {message}")]
    Http {
        /// What was asked.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// Foreman refused the session token: the session ended there (stopped, its claim expired, or Foreman
    /// restarted). The agent is stopped.
    #[error("{what}: Foreman refused the session token (the session was stopped, expired, or Foreman restarted)")]
    Refused {
        /// What was asked.
        what: &'static str,
    },
    /// Something on this machine failed (a directory, git).
    #[error("{0}")]
    Local(String),
}

impl ConnectError {
    fn local(what: &str, e: impl std::fmt::Display) -> Self {
        Self::Local(format!("{what}: {e}"))
    }
}

/// Foreman as the runner reaches it: the session URL and the token.
#[derive(Clone)]
struct Foreman {
    http: reqwest::Client,
    url: String,
    token: Arc<SecretString>,
}

/// A failed request: whether trying again may help (a connection failure, a 5xx, a 429).
struct Failed {
    retry: bool,
    /// Foreman refused the token (401): the session ended there (stopped, expired, or Foreman restarted).
    refused: bool,
    message: String,
}

impl Foreman {
    fn backoff() -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(6)
            .with_jitter()
    }

    async fn once(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<reqwest::Response, Failed> {
        let mut req = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(self.token.expose_secret());
        if let Some((bytes, kind)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, kind).body(bytes);
        }
        let resp = req.send().await.map_err(|e| Failed { retry: true, refused: false, message: e.to_string() })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(Failed {
            retry: status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
            refused: status == reqwest::StatusCode::UNAUTHORIZED,
            message: format!("{status}: {}", text.chars().take(300).collect::<String>()),
        })
    }

    /// One request, retried with backoff while retrying may help.
    async fn call(
        &self,
        what: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<reqwest::Response, ConnectError> {
        (|| self.once(method.clone(), path, body.clone()))
            .retry(Self::backoff())
            .when(|f: &Failed| f.retry)
            .await
            .map_err(|f| {
                if f.refused { ConnectError::Refused { what } } else { ConnectError::Http { what, message: f.message } }
            })
    }

    async fn send_events(&self, batch: &[Event]) -> Result<(), ConnectError> {
        let body = serde_json::to_vec(batch).unwrap_or_default();
        self.call("sending events", reqwest::Method::POST, "/events", Some((body, "application/json"))).await.map(drop)
    }
}

/// Runs the session at `url` with `token`. Returns once the result is handed back to Foreman (whatever the
/// agent came to: its failure is Foreman's to report), or with the error that stopped it.
///
/// # Errors
/// [`ConnectError`]: Foreman unreachable or refusing the token, the bundle not cloning, the result not
/// uploaded after retries.
pub async fn connect(url: &str, token: SecretString) -> Result<(), ConnectError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ConnectError::local("building the HTTP client", e))?;
    let mut foreman = Foreman { http, url: url.trim_end_matches('/').to_owned(), token: Arc::new(token) };
    // The dispatch token is spent here: what follows uses the connection token, which no log shows.
    let connected: Connected = foreman
        .call("fetching the session", reqwest::Method::POST, "/connect", None)
        .await?
        .json()
        .await
        .map_err(|e| ConnectError::Http { what: "reading the session", message: e.to_string() })?;
    foreman.token = Arc::new(SecretString::from(connected.token));
    let spec = connected.spec;
    let root = std::env::var_os("RUNNER_TEMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = root.join(format!("foreman-session-{}", spec.session_id));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| ConnectError::local("creating the session directory", e))?;
    let outcome = run_session(&foreman, &spec, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run_session(foreman: &Foreman, spec: &RemoteSpec, dir: &Path) -> Result<(), ConnectError> {
    // The branch as Foreman holds it.
    let bundle = dir.join("session.bundle");
    let mut resp = foreman.call("fetching the bundle", reqwest::Method::GET, "/bundle", None).await?;
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&bundle).map_err(|e| ConnectError::local("writing the bundle", e))?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ConnectError::Http { what: "fetching the bundle", message: e.to_string() })?
        {
            file.write_all(&chunk).map_err(|e| ConnectError::local("writing the bundle", e))?;
        }
    }
    let work = dir.join("work");
    crate::git::init(&work, false).await.map_err(|e| ConnectError::local("git init", e))?;
    let git = Git::work_tree(&work);
    let branch_ref = format!("refs/heads/{}", spec.branch);
    let bundle_arg = bundle.to_string_lossy().into_owned();
    // A bundle is read through git's file transport, which Foreman's git allows only when asked.
    git.clone()
        .local()
        .run(&[
            "fetch",
            "--quiet",
            "--update-head-ok",
            "--no-tags",
            &bundle_arg,
            &format!("+{branch_ref}:{branch_ref}"),
        ])
        .await
        .map_err(|e| ConnectError::local("fetching the bundle", e))?;
    git.run(&["checkout", "--quiet", "--force", &spec.branch])
        .await
        .map_err(|e| ConnectError::local("git checkout", e))?;
    let head = git.run(&["rev-parse", "HEAD"]).await.map_err(|e| ConnectError::local("git rev-parse", e))?;
    if head.trim() != spec.base_commit {
        return Err(ConnectError::Local(format!(
            "the bundle's {} is at {}, not at the session's base {}",
            spec.branch,
            head.trim(),
            spec.base_commit
        )));
    }
    let home = dir.join("home");
    let scratch = dir.join("scratch");
    let logs = dir.join("logs");
    for d in [&home, &scratch, &logs] {
        std::fs::create_dir_all(d).map_err(|e| ConnectError::local("creating the session directory", e))?;
    }
    let config = spec.agent.config();
    let agent = session::agent::build(&config, session::Credentials::from_env())
        .map_err(|e| ConnectError::Local(format!("the agent: {e}")))?;
    let executor =
        crate::executor::local::LocalExecutor::new(&dir.join("executor"), &config.sandbox_config(), &dir.join("work"))
            .map_err(|(p, e)| ConnectError::local(&p.display().to_string(), e))?;
    let mounts = Mounts {
        workspace: work.clone(),
        home: home.clone(),
        read_only: Vec::new(),
        files: Vec::new(),
        network: NetworkAccess::Open,
    };
    let identity: BTreeMap<String, String> = [
        ("GIT_AUTHOR_NAME", &config.git_name),
        ("GIT_COMMITTER_NAME", &config.git_name),
        ("GIT_AUTHOR_EMAIL", &config.git_email),
        ("GIT_COMMITTER_EMAIL", &config.git_email),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    let vars = std::env::vars().filter(|(k, _)| k != TOKEN_ENV);
    let mut env = session::env::build(vars, &config.env_allow, &config.env);
    env.extend(identity.clone());
    let plan_file = spec.plan.then(|| home.join(PLAN_FILE));
    if let Some(path) = &plan_file {
        env.insert("FOREMAN_PLAN_FILE".into(), path.to_string_lossy().into_owned());
    }
    let repo = spec.repo.parse().map_err(|_| ConnectError::Local(format!("the session's repository {}", spec.repo)))?;
    let session_spec = session::SessionSpec {
        repo,
        kind: if spec.plan { PromptKind::Planning } else { PromptKind::Coding },
        remote_url: String::new(),
        auth: None,
        default_branch: String::new(),
        branch: Some(spec.branch.clone()),
        issue: session::IssueText {
            number: spec.issue,
            title: String::new(),
            body: String::new(),
            author: session::Person { login: String::new(), trusted: false },
        },
        resolves: None,
        comments: Vec::new(),
        requester: session::Person { login: String::new(), trusted: false },
        instructions: None,
        constitution: Vec::new(),
        attempt: 1,
        previous_failure: None,
        resume: None,
        workspace_issue: None,
        overrides: None,
        session_id: Some(spec.session_id.clone()),
        rules: None,
        installation: None,
        executor: None,
    };
    let mut log = session::log::SessionLog::create(&logs, "session", config.log_max_bytes);
    let log_path = log.path().to_owned();

    // Events go out as they come, in batches, with the log's new lines; a quiet agent still says it is alive.
    let queue: Arc<Mutex<Vec<Event>>> = Arc::default();
    let stop = CancellationToken::new();
    // A session Foreman no longer knows stops here too.
    let cancel = CancellationToken::new();
    let sender = tokio::spawn(send_loop(
        foreman.clone(),
        queue.clone(),
        log_path,
        Duration::from_secs(spec.keepalive_secs.max(1)),
        stop.clone(),
        cancel.clone(),
    ));
    let on_signal = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        })
    };
    let progress = {
        let queue = queue.clone();
        move |p: Progress| queue.lock().expect("queue lock").push(Event::Progress { progress: p })
    };
    let run = AgentRun {
        config: &config,
        spec: &session_spec,
        session_id: &spec.session_id,
        branch: &spec.branch,
        mounts: &mounts,
        env,
        prompt: spec.prompt.clone(),
        scratch_dir: &scratch,
        executor: &executor,
        cancel: &cancel,
        progress: &progress,
        log: &mut log,
    };
    let end = agent.run(run).await;
    on_signal.abort();
    let plan = plan_file.as_deref().and_then(|p| std::fs::read(p).ok()).map(|mut bytes| {
        bytes.truncate(session::PLAN_FILE_BYTES as usize);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let message = format!("Changes left uncommitted by the agent (foreman session {})", spec.session_id);
    session::outcome::commit_leftovers(&work, &message, &identity)
        .await
        .map_err(|e| ConnectError::local("committing the agent's leftovers", e))?;
    let head = git.run(&["rev-parse", "HEAD"]).await.map_err(|e| ConnectError::local("git rev-parse", e))?;
    let head = head.trim().to_owned();
    log.event("runner_end", serde_json::json!({ "head": head, "failure": end.failure.as_ref().map(|f| &f.1) }));
    drop(log);
    // The last events and log lines go before the result.
    stop.cancel();
    let _ = sender.await;
    if head != spec.base_commit {
        git.run(&["update-ref", &branch_ref, &head]).await.map_err(|e| ConnectError::local("git update-ref", e))?;
        let out = dir.join("result.bundle");
        let out_arg = out.to_string_lossy().into_owned();
        let exclude = format!("^{}", spec.base_commit);
        git.run(&["bundle", "create", "--quiet", &out_arg, &branch_ref, &exclude])
            .await
            .map_err(|e| ConnectError::local("git bundle create", e))?;
        let bytes = std::fs::read(&out).map_err(|e| ConnectError::local("reading the result bundle", e))?;
        foreman
            .call("uploading the bundle", reqwest::Method::PUT, "/bundle", Some((bytes, "application/octet-stream")))
            .await?;
    }
    let result = RemoteResult::of(end, plan, head);
    let body = serde_json::to_vec(&result).unwrap_or_default();
    foreman.call("handing back the result", reqwest::Method::POST, "/result", Some((body, "application/json"))).await?;
    Ok(())
}

/// Sends queued events and the session log's new lines every [`SEND_EVERY`], and [`Event::Alive`] after
/// `keepalive` of nothing, until `stop`; then sends what is left. Foreman refusing the token cancels
/// `refused` (the agent's run) and ends the loop.
async fn send_loop(
    foreman: Foreman,
    queue: Arc<Mutex<Vec<Event>>>,
    log: PathBuf,
    keepalive: Duration,
    stop: CancellationToken,
    refused: CancellationToken,
) {
    let mut offset = 0u64;
    let mut last = Instant::now();
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(SEND_EVERY) => false,
            _ = stop.cancelled() => true,
        };
        let mut batch: Vec<Event> = read_lines(&log, &mut offset).into_iter().map(|line| Event::Log { line }).collect();
        batch.append(&mut queue.lock().expect("queue lock"));
        if batch.is_empty() && last.elapsed() >= keepalive {
            batch.push(Event::Alive);
        }
        if !batch.is_empty() {
            // Events are the claim's heartbeat: one that cannot be sent after retries is dropped, and the
            // next batch tries again.
            for chunk in batches(batch, BATCH_BYTES) {
                match foreman.send_events(&chunk).await {
                    Ok(()) => {}
                    Err(e @ ConnectError::Refused { .. }) => {
                        eprintln!("foreman: {e}; stopping the agent");
                        refused.cancel();
                        return;
                    }
                    Err(e) => eprintln!("foreman: {e}"),
                }
            }
            last = Instant::now();
        }
        if stopping {
            return;
        }
    }
}

/// The most of one batch of events, in bytes of JSON: under Foreman's bound on a batch
/// ([`super::routes::MAX_EVENTS_BYTES`]).
const BATCH_BYTES: usize = super::routes::MAX_EVENTS_BYTES * 3 / 4;

/// `events` in order, cut into batches of at most `max` bytes of JSON each (an event larger than that alone).
fn batches(events: Vec<Event>, max: usize) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut size = 0;
    for event in events {
        let len = serde_json::to_vec(&event).map_or(0, |v| v.len()) + 1;
        if out.is_empty() || size + len > max {
            out.push(Vec::new());
            size = 0;
        }
        size += len;
        out.last_mut().expect("a batch").push(event);
    }
    out
}

/// The most of one log line sent, in characters (well under a batch's bound).
const MAX_LINE_CHARS: usize = 128 * 1024;

/// The complete lines of `path` after `offset` (moved past them), each at most [`MAX_LINE_CHARS`].
fn read_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    use std::io::{Read as _, Seek as _};
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    if file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(512 * 1024).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        if bytes.len() == 512 * 1024 {
            // A line longer than what is read at once: skipped.
            *offset += bytes.len() as u64;
        }
        return Vec::new();
    };
    *offset += end as u64 + 1;
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(MAX_LINE_CHARS).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Event, batches};

    #[test]
    fn batches_stay_under_the_bound_and_in_order() {
        let events: Vec<Event> = (0..100).map(|i| Event::Log { line: format!("{i:0>1000}") }).collect();
        let cut = batches(events, 10_000);
        assert!(cut.len() > 5);
        for batch in &cut {
            assert!(serde_json::to_vec(batch).unwrap().len() <= 10_000 + 2);
        }
        let flat: Vec<String> = cut
            .into_iter()
            .flatten()
            .map(|e| match e {
                Event::Log { line } => line,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(flat.len(), 100);
        assert!(flat.windows(2).all(|w| w[0] < w[1]));
    }
}
