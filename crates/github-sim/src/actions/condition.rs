//! A step's `if:` as the simulated runner evaluates it: GitHub's expression syntax, a subset.
//!
//! Supported: the status functions `success()`, `failure()`, `cancelled()`, `always()`; `!`, `&&`, `||`,
//! `==`, `!=` and parentheses; single-quoted strings, numbers, `true`, `false`, `null`; context paths
//! (`inputs.x`, `env.X`, `github.ref_name`, …, see [`Contexts`]). As on GitHub, string comparison ignores
//! case, an input given as `true`/`false` reads as a boolean, and a condition without a status function
//! holds only while every step so far has succeeded (`success() && …`). Anything else (other functions,
//! `<`, `>`, indexing) is an error, which fails the step.

use super::workflow::Contexts;

/// What the job looks like when a step's condition is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Success,
    Failure,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
        }
    }
    fn loose_eq(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::Str(a), Val::Str(b)) => a.eq_ignore_ascii_case(b),
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (a, b) => a.num().is_some_and(|x| b.num().is_some_and(|y| x == y)),
        }
    }
    fn num(&self) -> Option<f64> {
        match self {
            Val::Null => Some(0.0),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Num(n) => Some(*n),
            Val::Str(s) if s.trim().is_empty() => Some(0.0),
            Val::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Not,
    And,
    Or,
    Eq,
    Ne,
    Str(String),
    Word(String),
    Call(String),
}

fn tokens(expr: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '!' if next == Some('=') => {
                out.push(Tok::Ne);
                i += 2;
            }
            '!' => {
                out.push(Tok::Not);
                i += 1;
            }
            '=' if next == Some('=') => {
                out.push(Tok::Eq);
                i += 2;
            }
            '&' if next == Some('&') => {
                out.push(Tok::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                out.push(Tok::Or);
                i += 2;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unclosed string".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_-.*".contains(chars[i])) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'(') && chars.get(i + 1) == Some(&')') {
                    out.push(Tok::Call(word.to_ascii_lowercase()));
                    i += 2;
                } else if chars.get(i) == Some(&'(') {
                    return Err(format!("the function `{word}` is not supported by github-sim"));
                } else {
                    out.push(Tok::Word(word));
                }
            }
            other => return Err(format!("`{other}` is not supported by github-sim")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    ctx: &'a Contexts,
    status: JobStatus,
    /// Whether a status function was called.
    saw_status: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Val, String> {
        let mut v = self.and()?;
        while self.eat(&Tok::Or) {
            let r = self.and()?;
            if !v.truthy() {
                v = r;
            }
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<Val, String> {
        let mut v = self.cmp()?;
        while self.eat(&Tok::And) {
            let r = self.cmp()?;
            if v.truthy() {
                v = r;
            }
        }
        Ok(v)
    }
    fn cmp(&mut self) -> Result<Val, String> {
        let l = self.unary()?;
        if self.eat(&Tok::Eq) {
            let r = self.unary()?;
            return Ok(Val::Bool(l.loose_eq(&r)));
        }
        if self.eat(&Tok::Ne) {
            let r = self.unary()?;
            return Ok(Val::Bool(!l.loose_eq(&r)));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Val, String> {
        if self.eat(&Tok::Not) {
            return Ok(Val::Bool(!self.unary()?.truthy()));
        }
        if self.eat(&Tok::Open) {
            let v = self.or()?;
            if !self.eat(&Tok::Close) {
                return Err("a `(` without its `)`".into());
            }
            return Ok(v);
        }
        let Some(t) = self.toks.get(self.at).cloned() else { return Err("an expression ends too early".into()) };
        self.at += 1;
        match t {
            Tok::Str(s) => Ok(Val::Str(s)),
            Tok::Call(f) => {
                self.saw_status = true;
                Ok(Val::Bool(match f.as_str() {
                    "success" => self.status == JobStatus::Success,
                    "failure" => self.status == JobStatus::Failure,
                    "cancelled" => self.status == JobStatus::Cancelled,
                    "always" => true,
                    other => return Err(format!("the function `{other}()` is not supported by github-sim")),
                }))
            }
            Tok::Word(w) => Ok(match w.as_str() {
                "true" => Val::Bool(true),
                "false" => Val::Bool(false),
                "null" => Val::Null,
                _ => match w.parse::<f64>() {
                    Ok(n) if !w.contains(|c: char| c.is_alphabetic()) => Val::Num(n),
                    _ => match self.ctx.lookup(&w) {
                        s if s == "true" => Val::Bool(true),
                        s if s == "false" => Val::Bool(false),
                        s => Val::Str(s),
                    },
                },
            }),
            other => Err(format!("`{other:?}` where a value belongs")),
        }
    }
}

/// Whether a step with `if: condition` runs when the job is at `status`. `Err` says why the condition
/// cannot be evaluated.
pub(crate) fn holds(condition: &str, ctx: &Contexts, status: JobStatus) -> Result<bool, String> {
    let c = condition.trim();
    let c = c.strip_prefix("${{").and_then(|c| c.strip_suffix("}}")).unwrap_or(c);
    let mut p = Parser { toks: tokens(c)?, at: 0, ctx, status, saw_status: false };
    let v = p.or()?;
    if p.at != p.toks.len() {
        return Err(format!("unexpected `{:?}`", p.toks[p.at]));
    }
    Ok(v.truthy() && (p.saw_status || status == JobStatus::Success))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_functions_comparisons_and_the_implicit_success() {
        let mut c = Contexts::default();
        c.set("inputs", "flag", "false");
        c.set("inputs", "mode", "Fast");
        let ok = |e: &str, s| holds(e, &c, s).unwrap();
        assert!(ok("always()", JobStatus::Cancelled));
        assert!(ok("failure()", JobStatus::Failure) && !ok("failure()", JobStatus::Success));
        assert!(!ok("inputs.mode == 'fast'", JobStatus::Failure), "no status function: only after success");
        assert!(ok("${{ inputs.mode == 'fast' }}", JobStatus::Success), "case-insensitive");
        assert!(ok("!inputs.flag && inputs.mode != 'slow'", JobStatus::Success));
        assert!(ok("always() && (inputs.nope || 'x') == 'x'", JobStatus::Failure));
        assert!(!ok("cancelled() || false", JobStatus::Success));
        assert!(holds("contains(inputs.mode, 'a')", &c, JobStatus::Success).is_err());
        assert!(holds("inputs.mode ==", &c, JobStatus::Success).is_err());
    }
}
