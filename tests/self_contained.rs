//! The repository is self-contained: what the product and the tests read lives in `vendor/` (each data folder
//! with its licence and source), nothing refers to a folder beside the checkout, and the built `foreman`
//! looks nothing up at a path fixed at compile time. `.ci/self-contained` shows the same from a clone with
//! nothing beside it (github-sim's tests and `foreman demo` run there).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            // Build output and fetched tools are not the repository's files.
            if name != "target" && name != "node_modules" && name != ".git" {
                files_under(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}

#[test]
fn no_source_refers_to_a_folder_beside_the_checkout() {
    // Built from two halves so this file does not match itself.
    let needle = concat!("..", "/shared");
    let mut files = Vec::new();
    for dir in ["src", "crates", "tests", "benches", "fuzz", ".ci"] {
        files_under(&root().join(dir), &mut files);
    }
    assert!(files.len() > 100, "expected the repository's sources, found {} files", files.len());
    let offending: Vec<String> = files
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
        .collect();
    assert!(offending.is_empty(), "these files refer to {needle}; use vendor/ instead: {offending:?}");
}

/// The data folders under `vendor/`, each a copy of an upstream source.
const DATA: &[&str] = &["github/rest", "github/graphql", "github/webhooks", "agents/claude-code"];

#[test]
fn every_vendored_folder_keeps_its_licence_and_source_and_the_readme_names_it() {
    let vendor = root().join("vendor");
    let readme = std::fs::read_to_string(vendor.join("README.md")).expect("vendor/README.md");
    for dir in DATA {
        let d = vendor.join(dir);
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("vendor/{dir}: {e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("SOURCE")), "vendor/{dir} has no SOURCE file: {names:?}");
        // The agent transcripts come from several repositories: SOURCES.md gives each file's licence.
        let licensed = names.iter().any(|n| n.starts_with("LICENSE"))
            || std::fs::read_to_string(d.join("SOURCES.md")).is_ok_and(|s| s.contains("license"));
        assert!(licensed, "vendor/{dir} has no LICENSE: {names:?}");
        assert!(readme.contains(&format!("`{dir}/`")), "vendor/README.md does not describe {dir}/");
    }
    // Nothing else is vendored (the fixtures, the bench harness and the design documents are not used).
    let mut top = Vec::new();
    for group in ["github", "agents"] {
        for e in std::fs::read_dir(vendor.join(group)).unwrap().flatten() {
            top.push(format!("{group}/{}", e.file_name().to_string_lossy()));
        }
    }
    top.sort();
    let mut want: Vec<String> = DATA.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(top, want, "vendor/ holds exactly the data folders vendor/README.md describes");
}

/// `vendor/README.md` records the SHA-256 of the REST description as published; the compressed copy must
/// decompress to exactly that file (compressed, not trimmed), with the size and counts SOURCE.txt gives.
#[test]
fn the_vendored_rest_description_is_the_published_file_compressed_not_trimmed() {
    let vendor = root().join("vendor");
    let readme = std::fs::read_to_string(vendor.join("README.md")).unwrap();
    let recorded = readme
        .lines()
        .find_map(|l| l.split("sha256 ").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .expect("vendor/README.md records `sha256 <hex>` of api.github.com.json");
    let source = std::fs::read_to_string(vendor.join("github/rest/SOURCE.txt")).unwrap();
    let bytes = github_sim::descriptions::rest_description();
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), recorded);
    assert!(source.contains(&format!("{} bytes", bytes.len())), "SOURCE.txt gives another size than {}", bytes.len());
    let api: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let paths = api["paths"].as_object().unwrap().len();
    let schemas = api["components"]["schemas"].as_object().unwrap().len();
    assert!(source.contains(&format!("{paths} paths, {schemas} component schemas")), "{paths} paths, {schemas}");
    // And the file in the repository is that compressed copy, the one built into github-sim.
    let on_disk = zstd::decode_all(&std::fs::read(vendor.join("github/rest/api.github.com.json.zst")).unwrap()[..]);
    assert!(on_disk.unwrap() == bytes, "vendor/github/rest/api.github.com.json.zst differs from the built-in copy");
}

/// The built binary, without its debug information (which names the build directory for debuggers), holds
/// no path of this checkout: nothing is looked up at run time where the source was built.
#[test]
fn the_foreman_binary_holds_no_path_of_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let stripped = dir.path().join("foreman");
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(env!("CARGO_BIN_EXE_foreman"))
        .output()
        .expect("strip (binutils, part of the C toolchain the build needs) runs");
    assert!(out.status.success(), "strip: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&stripped).unwrap();
    let checkout = root().to_str().unwrap().as_bytes();
    let at = bytes.windows(checkout.len()).position(|w| w == checkout);
    if let Some(at) = at {
        let end = bytes[at..].iter().position(|b| *b == 0 || !b.is_ascii_graphic()).map_or(bytes.len(), |n| at + n);
        panic!("the foreman binary holds a path of the checkout: {}", String::from_utf8_lossy(&bytes[at..end]));
    }
}
