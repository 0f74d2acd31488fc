//! The `foreman` binary: see `foreman help`.

fn main() -> std::process::ExitCode {
    foreman::cli::main()
}
