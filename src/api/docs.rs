//! Documentation Foreman serves to the people its comments link: `docs/constitution.md` as built into this
//! version (so it matches the keys it reads), rendered to HTML with pulldown-cmark and with GitHub's heading
//! anchors, so a link to a key's section (`…/docs/constitution.md#agent`) lands on it.

use std::collections::HashMap;
use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// The constitution's documentation, built in.
const CONSTITUTION_MD: &str = include_str!("../../docs/constitution.md");

/// The page, rendered once.
pub static CONSTITUTION_HTML: LazyLock<String> =
    LazyLock::new(|| page("Foreman: the repository constitution", CONSTITUTION_MD));

/// GitHub's anchor for a heading's text: lower-cased, characters other than letters, digits, spaces, `-`
/// and `_` dropped, spaces turned into `-` (a repeat gets `-1`, `-2` …, added by [`html`]).
pub fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `markdown` as HTML, every heading with its GitHub anchor as its `id`.
pub fn html(markdown: &str) -> String {
    let mut events: Vec<Event<'_>> = Parser::new_ext(markdown, Options::all()).collect();
    let mut seen = HashMap::<String, usize>::new();
    let mut i = 0;
    while i < events.len() {
        if matches!(events[i], Event::Start(Tag::Heading { .. })) {
            let mut text = String::new();
            let mut j = i + 1;
            while j < events.len() && !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                if let Event::Text(t) | Event::Code(t) = &events[j] {
                    text.push_str(t);
                }
                j += 1;
            }
            let base = slug(&text);
            let n = seen.entry(base.clone()).or_insert(0);
            let anchor = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
            *n += 1;
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(anchor));
            }
            i = j;
        }
        i += 1;
    }
    let mut out = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    out
}

/// A whole HTML page titled `title` with `markdown` rendered in it: no script, a few lines of style.
fn page(title: &str, markdown: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}}\
         code,pre{{background:#f4f4f4}}pre{{padding:.5rem;overflow:auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2rem .4rem}}</style></head>\n<body>\n{}</body></html>\n",
        html(markdown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_links_to_a_section_of_the_served_page() {
        for key in crate::constitution::keys::KEYS {
            let link = crate::constitution::keys::doc_link("", key.path);
            let id = format!(" id=\"{}\"", link.trim_start_matches('#'));
            assert!(CONSTITUTION_HTML.contains(&id), "{} links to {link}, which the page lacks", key.path);
        }
        assert!(CONSTITUTION_HTML.contains(" id=\"validation\""));
    }

    #[test]
    fn headings_get_githubs_anchors() {
        let out = html("# `[agent]`\n\n## Setup\n\n## Setup\n\ntext with <b>");
        assert!(out.contains(r#"<h1 id="agent">"#), "{out}");
        assert!(out.contains(r#"<h2 id="setup">"#) && out.contains(r#"<h2 id="setup-1">"#), "{out}");
    }
}
