//! The text of a Markdown comment that GitHub renders as prose: everything outside fenced and indented
//! code blocks, inline code, block quotes and HTML (comments included). Commands are looked for only
//! there, so a quoted or pasted command never runs.

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// Stands in for inline code and inline HTML, so the text after them never looks like the start of a line.
const PLACEHOLDER: char = '\u{FFFC}';

/// The prose of `markdown`, one output line per source line of prose; each block ends a line.
///
/// Parsed with pulldown-cmark's CommonMark defaults (no tables or other extensions), close to what
/// GitHub renders.
pub fn prose(markdown: &str) -> String {
    let mut out = String::new();
    // How many code blocks, quotes and HTML blocks enclose the current event.
    let mut hidden = 0usize;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::CodeBlock(_) | Tag::BlockQuote(_) | Tag::HtmlBlock) => hidden += 1,
            Event::End(TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::HtmlBlock) => {
                hidden = hidden.saturating_sub(1);
                end_line(&mut out);
            }
            _ if hidden > 0 => {}
            Event::Text(t) => out.push_str(&t),
            Event::Code(_) | Event::InlineHtml(_) | Event::Html(_) | Event::InlineMath(_) | Event::DisplayMath(_) => {
                out.push(PLACEHOLDER)
            }
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            // Inline formatting stays on its line: `please **do** /foreman run` is one line of prose.
            Event::Start(
                Tag::Emphasis
                | Tag::Strong
                | Tag::Strikethrough
                | Tag::Superscript
                | Tag::Subscript
                | Tag::Link { .. }
                | Tag::Image { .. },
            )
            | Event::End(
                TagEnd::Emphasis
                | TagEnd::Strong
                | TagEnd::Strikethrough
                | TagEnd::Superscript
                | TagEnd::Subscript
                | TagEnd::Link
                | TagEnd::Image,
            ) => {}
            // Every other tag is a block: it starts and ends a line.
            Event::Start(_) | Event::End(_) | Event::Rule => end_line(&mut out),
            _ => {}
        }
    }
    out
}

fn end_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::prose;

    #[test]
    fn keeps_prose_and_drops_code_quotes_and_html() {
        let md = "hello\n/foreman run\n\n```\n/foreman stop\n```\n\n    /foreman retry\n\n> /foreman plan\n\n<!--\n/foreman help\n-->\n\n`/foreman status`\n";
        let p = prose(md);
        assert!(p.contains("/foreman run"), "{p:?}");
        for hidden in ["stop", "retry", "plan", "help", "status"] {
            assert!(!p.contains(hidden), "{hidden} leaked: {p:?}");
        }
    }

    #[test]
    fn inline_html_comment_spanning_lines_is_dropped() {
        let p = prose("text <!-- a\n/foreman run\n--> more");
        assert!(!p.contains("/foreman"), "{p:?}");
    }
}
