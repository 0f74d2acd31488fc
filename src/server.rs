//! The HTTP server: routes, layers and graceful shutdown.

use std::path::Path;
use std::process::ExitCode;

/// Runs `foreman serve` until SIGTERM or SIGINT.
pub fn serve_main(_config: Option<&Path>) -> ExitCode {
    ExitCode::SUCCESS
}
