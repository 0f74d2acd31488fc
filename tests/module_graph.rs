//! The shape of the code, held by tests: no import cycles between the top-level modules of `src/`, no file
//! under `src/` over [`MAX_LINES`] lines, and no `Result<String, String>` in production code.
//!
//! A top-level module is a file or folder directly under `src/` (`lib.rs` and `main.rs`, the roots, are left
//! out). An edge `a → b` is any path `crate::b…` written in production code of `a`: a `use`, a path in an
//! expression or a type, or one inside a macro call's tokens. Code under `#[cfg(test)]` does not count; doc
//! comments are not code. Run with `cargo test --test module_graph`; a failure names each cycle with one
//! place per edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The longest a file under `src/` may be, in lines, unit tests included: a longer file is doing more than
/// one job.
const MAX_LINES: usize = 800;

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// The top-level module a file belongs to: `src/store/jobs.rs` → `store`, `src/git.rs` → `git`.
fn top_level(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let first = path.strip_prefix(&src).unwrap().components().next().unwrap();
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().contains("test")))
}

/// Collects the top-level modules that production code names through `crate::`.
#[derive(Default)]
struct Uses {
    /// The modules named.
    found: BTreeSet<String>,
}

impl Uses {
    fn add(&mut self, module: String) {
        self.found.insert(module);
    }

    fn use_tree(&mut self, tree: &syn::UseTree, under_crate: bool) {
        match tree {
            syn::UseTree::Path(p) if !under_crate && p.ident == "crate" => self.use_tree(&p.tree, true),
            syn::UseTree::Path(p) if under_crate => self.add(p.ident.to_string()),
            syn::UseTree::Name(n) if under_crate => self.add(n.ident.to_string()),
            syn::UseTree::Rename(r) if under_crate => self.add(r.ident.to_string()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t, under_crate)),
            _ => {}
        }
    }

    /// `crate :: name` inside a macro call's tokens, which syn leaves unparsed.
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let tokens: Vec<_> = tokens.into_iter().collect();
        for (i, t) in tokens.iter().enumerate() {
            match t {
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id) if id == "crate" => {
                    if let (
                        Some(proc_macro2::TokenTree::Punct(a)),
                        Some(proc_macro2::TokenTree::Punct(b)),
                        Some(proc_macro2::TokenTree::Ident(name)),
                    ) = (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        self.add(name.to_string());
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, false);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && first.ident == "crate"
        {
            self.add(second.ident.to_string());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Every edge between distinct top-level modules, with one place (`file:line`) that makes it.
fn edges() -> BTreeMap<(String, String), String> {
    let mut edges = BTreeMap::new();
    for path in sources() {
        let from = top_level(&path);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut uses = Uses::default();
        uses.visit_file(&file);
        let shown = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
        for to in uses.found {
            if to != from {
                // The first line naming it, for the message (a `use crate::{…}` group may name it on another).
                let needle = format!("crate::{to}");
                let line = text
                    .lines()
                    .position(|l| l.contains(&needle) && !l.trim_start().starts_with("//"))
                    .map_or(String::new(), |i| format!(":{}", i + 1));
                edges.entry((from.clone(), to)).or_insert(format!("{shown}{line}"));
            }
        }
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    #[derive(Default)]
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn connect<'a>(n: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        for &m in &next[n] {
            if !s.index.contains_key(m) {
                connect(m, next, s);
                let low = s.low[m].min(s.low[n]);
                s.low.insert(n, low);
            } else if s.stack.contains(&m) {
                let low = s.index[m].min(s.low[n]);
                s.low.insert(n, low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = Vec::new();
            while let Some(m) = s.stack.pop() {
                component.push(m.to_owned());
                if m == n {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State::default();
    for &n in next.keys() {
        if !s.index.contains_key(n) {
            connect(n, &next, &mut s);
        }
    }
    s.found
}

#[test]
fn no_cycles_between_top_level_modules() {
    let edges = edges();
    let found = cycles(&edges);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for ((a, b), at) in &edges {
            if component.contains(a) && component.contains(b) {
                report.push_str(&format!("  {a} → {b}  ({at})\n"));
            }
        }
    }
    assert!(found.is_empty(), "top-level modules import each other:\n{report}");
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut edges = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.insert((a.to_owned(), b.to_owned()), String::new());
    }
    assert_eq!(cycles(&edges), vec![vec!["a".to_owned(), "b".into(), "c".into()]]);
    let mut uses = Uses::default();
    let file: syn::File = syn::parse_str(
        "use crate::{x::Y, z};\n fn f() { tracing::info!(\"{}\", crate::w::v()); }\n \
         #[cfg(test)] mod tests { use crate::t; }",
    )
    .unwrap();
    uses.visit_file(&file);
    assert_eq!(uses.found.iter().collect::<Vec<_>>(), ["w", "x", "z"]);
}

#[test]
fn no_file_under_src_is_over_the_line_limit() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter_map(|p| {
            let lines = std::fs::read_to_string(&p).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn no_string_errors_in_production_code() {
    let mut found = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&text).unwrap();
        struct Find<'a>(&'a mut Vec<String>, String);
        impl<'ast> Visit<'ast> for Find<'_> {
            fn visit_item(&mut self, item: &'ast syn::Item) {
                if let syn::Item::Mod(m) = item
                    && is_cfg_test(&m.attrs)
                {
                    return;
                }
                syn::visit::visit_item(self, item);
            }
            fn visit_type_path(&mut self, t: &'ast syn::TypePath) {
                let text = quote::ToTokens::to_token_stream(t).to_string().replace(' ', "");
                if text.ends_with("Result<String,String>") {
                    self.0.push(format!("{}: {text}", self.1));
                }
                syn::visit::visit_type_path(self, t);
            }
        }
        Find(&mut found, path.display().to_string()).visit_file(&file);
    }
    assert!(found.is_empty(), "Result<String, String> in production code:\n{}", found.join("\n"));
}
