//! `foreman sandbox-bridge`: the first process inside an agent's sandbox when its network is `allowlist`.
//!
//! The sandbox's network namespace has only a loopback interface, so the agent cannot reach Foreman's proxy
//! by TCP. The bridge listens on a loopback address inside the namespace (`--listen`, the address the
//! agent's `HTTPS_PROXY` names), relays each accepted connection byte for byte to the proxy's Unix socket
//! (`--socket`, bind-mounted from the session's directory), runs the program after `--` and exits with its
//! status. It decides nothing: every decision is the proxy's, outside the sandbox.
//!
//! ```text
//! foreman sandbox-bridge --listen 127.0.0.1:3128 --socket /run/foreman/proxy.sock -- claude -p …
//! ```
//!
//! It uses std threads (two per relayed connection, small stacks), not the async runtime, and at most
//! [`super::MAX_CONNECTIONS`] relays at once (more are closed at once; the proxy has the same cap). The
//! program inherits the bridge's stdin, stdout, stderr, environment and working directory. SIGTERM, SIGINT,
//! SIGHUP and SIGQUIT sent to the bridge are passed on to the program. Exit status: the program's; 128 +
//! the signal number when a signal ended it; 125 when the bridge cannot listen; 126 when the program cannot
//! be started, 127 when it is not found (the conventions of `env` and `timeout`). The bridge kills nothing:
//! when the program ends, it exits, and the sandbox's PID namespace ends whatever else runs.

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::thread;

use clap::Args;

/// The arguments of `foreman sandbox-bridge`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// The loopback address to listen on, e.g. `127.0.0.1:3128` (what the agent's proxy variables name).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The network proxy's Unix socket.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The program to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<OsString>,
}

/// Stack size of a relay thread: it holds `io::copy`'s 8 KiB buffer and little else.
const RELAY_STACK_BYTES: usize = 64 * 1024;

/// The program's process id once started (0 before): where forwarded signals go.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Runs the bridge; returns the exit status described in the module documentation.
pub fn main(args: BridgeArgs) -> ExitCode {
    if !args.listen.ip().is_loopback() {
        eprintln!("foreman sandbox-bridge: --listen {} is not a loopback address", args.listen);
        return ExitCode::from(125);
    }
    // Forwarded signals stay blocked until the program's id is known, and blocked for good in the relay
    // threads (which inherit the mask), so each is handled on this thread once there is a program to pass it to.
    set_forwarded_blocked(true);
    forward_signals();
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("foreman sandbox-bridge: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(125);
        }
    };
    let socket = args.socket;
    let accepting = thread::Builder::new().name("bridge-accept".into()).spawn(move || accept(listener, &socket));
    if let Err(e) = accepting {
        eprintln!("foreman sandbox-bridge: cannot start: {e}");
        return ExitCode::from(125);
    }
    let (program, rest) = args.command.split_first().expect("clap requires a program");
    let mut command = Command::new(program);
    command.args(rest);
    // SAFETY: the closure runs in the forked child before exec and only calls pthread_sigmask, which is
    // async-signal-safe. A blocked signal mask survives exec: the program must start with none blocked.
    unsafe {
        command.pre_exec(|| {
            set_forwarded_blocked(false);
            Ok(())
        })
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foreman sandbox-bridge: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    set_forwarded_blocked(false);
    match child.wait() {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("foreman sandbox-bridge: cannot wait for the program: {e}");
            ExitCode::from(125)
        }
    }
}

fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        (None, None) => ExitCode::from(125),
    }
}

/// The signals passed on to the program.
const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Blocks or unblocks [`FORWARDED`] on the calling thread.
fn set_forwarded_blocked(blocked: bool) {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in FORWARDED {
            libc::sigaddset(&mut set, signal);
        }
        let how = if blocked { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Passes the terminating signals on to the program; when there is none (it could not be started), they
/// end the bridge.
fn forward_signals() {
    extern "C" fn pass_on(signal: libc::c_int) {
        let child = CHILD.load(Ordering::SeqCst);
        if child > 0 {
            // SAFETY: kill(2) is async-signal-safe, and `child` is our own child's id (never 0 or -1, which
            // would name a process group or every process).
            unsafe { libc::kill(child, signal) };
        } else {
            // SAFETY: _exit(2) is async-signal-safe.
            unsafe { libc::_exit(128 + signal) };
        }
    }
    for signal in FORWARDED {
        // SAFETY: installs a handler that only calls async-signal-safe functions. The program gets default
        // dispositions back at exec (caught signals are reset by execve(2)).
        unsafe { libc::signal(signal, pass_on as *const () as libc::sighandler_t) };
    }
}

fn accept(listener: TcpListener, socket: &Path) {
    let open = Arc::new(AtomicUsize::new(0));
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        if open.load(Ordering::SeqCst) >= super::MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (socket, done) = (socket.to_owned(), open.clone());
        let spawned = thread::Builder::new().stack_size(RELAY_STACK_BYTES).spawn(move || {
            relay(tcp, &socket);
            done.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Copies both ways until both sides have finished, passing on each side's end of stream as a half-close.
fn relay(tcp: TcpStream, socket: &Path) {
    let unix = match UnixStream::connect(socket) {
        Ok(u) => u,
        Err(e) => {
            let body = format!("foreman sandbox-bridge: the network proxy is unreachable: {e}\n");
            let _ = write!(
                &tcp,
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    };
    let (Ok(tcp_up), Ok(unix_up)) = (tcp.try_clone(), unix.try_clone()) else { return };
    let up = thread::Builder::new().stack_size(RELAY_STACK_BYTES).spawn(move || {
        let _ = io::copy(&mut &tcp_up, &mut &unix_up);
        let _ = unix_up.shutdown(Shutdown::Write);
    });
    let Ok(up) = up else { return };
    let _ = io::copy(&mut &unix, &mut &tcp);
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = up.join();
}
