//! GitHub's API descriptions the simulator holds requests to, built into the binary from the repository's
//! `vendor/github/` (see `vendor/README.md`): the REST description (OpenAPI 3.0.3, zstd-compressed, whole:
//! nothing trimmed) and the public GraphQL schema. So `github-sim` and `foreman demo` run from any directory
//! with nothing beside them. A folder given at start ([`crate::SimConfig::descriptions_dir`], the binary's
//! `--descriptions-dir`) replaces them, for instance to try a newer description.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The REST description as vendored: `api.github.com.json` compressed with `zstd -19` (about 0.4 MB for
/// 13 MB).
const REST_ZSTD: &[u8] = include_bytes!("../../../vendor/github/rest/api.github.com.json.zst");
/// GitHub's public GraphQL schema (SDL, 1.2 MB), as vendored.
const GRAPHQL_SDL: &str = include_str!("../../../vendor/github/graphql/schema.graphql");

/// Where an overriding folder keeps the REST description, plain or zstd-compressed (`.zst` appended).
pub const REST_PATH: &str = "github/rest/api.github.com.json";
/// Where an overriding folder keeps the GraphQL schema.
pub const GRAPHQL_PATH: &str = "github/graphql/schema.graphql";

/// The largest REST description accepted once decompressed (the vendored one is 13 MB), so a corrupt or
/// hostile `.zst` cannot exhaust memory.
pub const MAX_REST_BYTES: u64 = 256 << 20;

/// The descriptions a simulator uses: the built-in ones, or files found in an overriding folder at start.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The copies built into the binary.
    Embedded,
    /// Files checked to exist at start: the REST description (plain JSON or `.zst`) and the GraphQL schema.
    Files { rest: PathBuf, graphql: PathBuf },
}

/// The descriptions every simulator in this process uses; the first [`select`] decides (a process runs
/// one set of descriptions, parsed once).
static SOURCE: OnceLock<Source> = OnceLock::new();

/// An overriding folder that does not hold both descriptions.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} is not in {dir}: expected {expected} (the descriptions folder holds {REST_PATH}[.zst] and \
     {GRAPHQL_PATH}; leave it out to use the built-in copies)"
)]
pub struct MissingDescription {
    /// "GitHub's OpenAPI description" or "GitHub's GraphQL schema".
    pub what: &'static str,
    /// The folder given.
    pub dir: PathBuf,
    /// The file looked for.
    pub expected: PathBuf,
}

/// Chooses the descriptions for this process: the built-in copies, or the files under `dir`, which must
/// exist (checked now, read on first use).
pub(crate) fn select(dir: Option<&Path>) -> Result<(), MissingDescription> {
    let source = match dir {
        None => Source::Embedded,
        Some(dir) => {
            let plain = dir.join(REST_PATH);
            let compressed = dir.join(format!("{REST_PATH}.zst"));
            let rest = if plain.is_file() {
                plain
            } else if compressed.is_file() {
                compressed
            } else {
                return Err(MissingDescription {
                    what: "GitHub's OpenAPI description",
                    dir: dir.into(),
                    expected: plain,
                });
            };
            let graphql = dir.join(GRAPHQL_PATH);
            if !graphql.is_file() {
                return Err(MissingDescription { what: "GitHub's GraphQL schema", dir: dir.into(), expected: graphql });
            }
            Source::Files { rest, graphql }
        }
    };
    let _ = SOURCE.set(source);
    Ok(())
}

fn source() -> &'static Source {
    SOURCE.get_or_init(|| Source::Embedded)
}

/// The REST description's JSON text, decompressed: the chosen one (see [`select`]).
pub(crate) fn rest() -> Result<Vec<u8>, String> {
    match source() {
        Source::Embedded => Ok(rest_description()),
        Source::Files { rest, .. } => {
            let bytes = std::fs::read(rest).map_err(|e| format!("reading {}: {e}", rest.display()))?;
            if rest.extension().is_some_and(|e| e == "zst") {
                unzstd(&bytes).map_err(|e| format!("decompressing {}: {e}", rest.display()))
            } else {
                Ok(bytes)
            }
        }
    }
}

/// The GraphQL schema's SDL: the chosen one (see [`select`]).
pub(crate) fn graphql() -> Result<String, String> {
    match source() {
        Source::Embedded => Ok(GRAPHQL_SDL.to_owned()),
        Source::Files { graphql, .. } => {
            std::fs::read_to_string(graphql).map_err(|e| format!("reading {}: {e}", graphql.display()))
        }
    }
}

fn unzstd(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(bytes)?.take(MAX_REST_BYTES + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_REST_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_REST_BYTES} bytes")));
    }
    Ok(out)
}

/// The built-in REST description (`api.github.com.json`, OpenAPI 3.0.3, 13 MB), decompressed: byte for
/// byte the file `vendor/github/rest/SOURCE.txt` names. For tests and tools that read the description.
pub fn rest_description() -> Vec<u8> {
    unzstd(REST_ZSTD).expect("the built-in REST description decompresses")
}

/// The built-in GraphQL schema (`schema.graphql`, octokit/graphql-schema).
pub fn graphql_schema() -> &'static str {
    GRAPHQL_SDL
}
