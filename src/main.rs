//! The `foreman` binary: see `foreman help`.
//!
//! The binary allocates with jemalloc ([`tikv_jemallocator`]), configured by [`MALLOC_CONF`]. Under the
//! ingest benchmark (`benches/ingest.sh`) glibc's malloc took about a fifth of the server's CPU: bodies of
//! 12 KB allocated by the request handlers and freed by the store writer thread, and sled's pages, kept its
//! bins consolidating. jemalloc cut the CPU per delivery from about 100 to about 85 µs at the same peak RSS
//! (README, Performance). It does not build for MSVC targets, where the system allocator stays.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once before `main` (the `malloc_conf` global of jemalloc(3), under the prefix
/// tikv-jemalloc-sys gives its symbols). The `_RJEM_MALLOC_CONF` environment variable is read after it and
/// wins where they differ.
///
/// - `narenas:1`: one arena. Foreman's threads are few and mostly wait; more arenas each kept their own
///   free pages and raised the peak RSS.
/// - `tcache_max:1024`: thread caches hold only objects up to 1 KiB; bigger ones (bodies, sled pages) go back
///   to the arena at once, where other threads reuse them. With the default (32 KiB) the peak RSS under the
///   benchmark was about 3 MB higher for no measurable speed.
/// - `background_thread:true`, `dirty_decay_ms:100`, `muzzy_decay_ms:0`: a jemalloc thread returns pages
///   unused for 100 ms to the kernel, so memory freed after a burst does not stay resident; without it the
///   peak RSS rose by about 10 MB.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: a pointer to the first byte of a static, NUL-terminated string, valid for the whole program.
    unsafe { &*c"narenas:1,tcache_max:1024,background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0".as_ptr() },
);

fn main() -> std::process::ExitCode {
    foreman::cli::main()
}
