//! The `foreman` binary: see `foreman help`.

/// mimalloc instead of the system allocator: a webhook delivery allocates many small buffers across threads,
/// and glibc's malloc spent about 16% of the ingest profile (perf, 64 connections) in its own bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    foreman::cli::main()
}
