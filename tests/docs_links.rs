//! The documentation's links resolve: every relative link in README.md, CONTRIBUTING.md and docs/*.md names
//! a file or folder of the repository, and every `#anchor` (in the same file or another Markdown file) names
//! one of its headings as GitHub renders them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files people read: the README, CONTRIBUTING and everything under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files.into_iter().filter(|p| p.is_file()).collect()
}

/// GitHub's anchor for a heading: lower-cased, characters other than letters, digits, spaces, `-` and `_`
/// dropped, spaces turned into `-`; a repeated anchor gets `-1`, `-2` … (as github.com renders Markdown).
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every heading anchor of a Markdown text.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(markdown, Options::all()) {
        match event {
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H6 => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let n = seen.entry(base.clone()).or_insert(0);
                out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
                *n += 1;
            }
            _ => {}
        }
    }
    out
}

/// Every link and image destination of a Markdown text.
fn links(markdown: &str) -> Vec<String> {
    Parser::new_ext(markdown, Options::all())
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(dest_url.into_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{name}: `{link}`: no such file"));
                continue;
            }
            if let Some(anchor) = anchor.filter(|a| !a.is_empty()) {
                if target.extension().is_none_or(|e| e != "md") {
                    continue;
                }
                let known = anchors(&std::fs::read_to_string(&target).unwrap());
                if !known.contains(anchor) {
                    broken.push(format!("{name}: `{link}`: no heading with anchor #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let known = anchors("# `foreman replay`: why didn't Foreman react?\n\n## Setup\n\n## Setup\n");
    assert!(known.contains("foreman-replay-why-didnt-foreman-react"), "{known:?}");
    assert!(known.contains("setup") && known.contains("setup-1"), "{known:?}");
    assert_eq!(
        links("[a](docs/x.md#y) ![i](img.png) <https://example.com>"),
        ["docs/x.md#y", "img.png", "https://example.com"]
    );
}
