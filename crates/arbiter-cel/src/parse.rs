//! Lexer and recursive-descent parser for the CEL subset Arbiter supports.
//!
//! Precedence, lowest first: `?:`, `||`, `&&`, relations (`== != < <= > >= in`),
//! `+ -`, `* / %`, unary `! -`, member access (`.f`, `.f(...)`, `[i]`).

use std::fmt;

/// A byte range in the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A syntax error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where in the expression.
    pub span: Span,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset {})", self.message, self.span.start)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
    Punct(&'static str),
    Eof,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `!`
    Not,
    /// `-`
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

/// A parsed expression with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it is in the text.
    pub span: Span,
}

/// The shapes of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// `42`
    Int(i64),
    /// `42u`
    UInt(u64),
    /// `4.2`
    Double(f64),
    /// `"text"`
    Str(String),
    /// A bare name.
    Ident(String),
    /// `target.field`
    Select(Box<Expr>, String),
    /// `target[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)` or `target.f(args)`
    Call {
        /// The receiver for method-style calls.
        target: Option<Box<Expr>>,
        /// Function name.
        func: String,
        /// The call's arguments, in order.
        args: Vec<Expr>,
    },
    /// `[a, b]`
    List(Vec<Expr>),
    /// `{k: v}`
    Map(Vec<(Expr, Expr)>),
    /// `!x`, `-x`
    Unary(UnOp, Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

const MAX_DEPTH: usize = 64;
const MAX_LEN: usize = 16 * 1024;

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn err(&self, start: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError { span: Span { start, end: self.pos.max(start + 1) }, message: message.into() }
    }

    fn next(&mut self) -> Result<(Tok, Span), SyntaxError> {
        let b = self.src.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.src[self.pos..].starts_with("//") {
                while self.pos < b.len() && b[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        let start = self.pos;
        if start >= b.len() {
            return Ok((Tok::Eof, Span { start, end: start }));
        }
        let c = b[start];
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            // raw strings: r"..." / R'...'
            if (c == b'r' || c == b'R') && start + 1 < b.len() && (b[start + 1] == b'"' || b[start + 1] == b'\'') {
                self.pos += 1;
                return self.string(start, true);
            }
            while self.pos < b.len() && (b[self.pos].is_ascii_alphanumeric() || b[self.pos] == b'_') {
                self.pos += 1;
            }
            Tok::Ident(self.src[start..self.pos].to_string())
        } else if c.is_ascii_digit() || (c == b'.' && start + 1 < b.len() && b[start + 1].is_ascii_digit()) {
            return self.number(start);
        } else if c == b'"' || c == b'\'' {
            return self.string(start, false);
        } else {
            const PUNCT: [&str; 24] = [
                "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",", "(",
                ")", "[", "]", "{", "}",
            ];
            let rest = &self.src[start..];
            match PUNCT.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    self.pos += p.len();
                    Tok::Punct(p)
                }
                None => {
                    let ch = rest.chars().next().unwrap_or('?');
                    self.pos += ch.len_utf8();
                    return Err(self.err(start, format!("unexpected character `{ch}`")));
                }
            }
        };
        Ok((tok, Span { start, end: self.pos }))
    }

    fn number(&mut self, start: usize) -> Result<(Tok, Span), SyntaxError> {
        let b = self.src.as_bytes();
        if self.src[start..].starts_with("0x") || self.src[start..].starts_with("0X") {
            self.pos += 2;
            let ds = self.pos;
            while self.pos < b.len() && b[self.pos].is_ascii_hexdigit() {
                self.pos += 1;
            }
            let v =
                u64::from_str_radix(&self.src[ds..self.pos], 16).map_err(|_| self.err(start, "invalid hex number"))?;
            return self.int_suffix(start, v);
        }
        let mut is_double = false;
        while self.pos < b.len() && b[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        if self.pos + 1 < b.len() && b[self.pos] == b'.' && b[self.pos + 1].is_ascii_digit() {
            is_double = true;
            self.pos += 1;
            while self.pos < b.len() && b[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
        }
        if self.pos < b.len() && (b[self.pos] == b'e' || b[self.pos] == b'E') {
            let save = self.pos;
            self.pos += 1;
            if self.pos < b.len() && (b[self.pos] == b'+' || b[self.pos] == b'-') {
                self.pos += 1;
            }
            if self.pos < b.len() && b[self.pos].is_ascii_digit() {
                is_double = true;
                while self.pos < b.len() && b[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text = &self.src[start..self.pos];
        if is_double {
            let v: f64 = text.parse().map_err(|_| self.err(start, "invalid number"))?;
            return Ok((Tok::Double(v), Span { start, end: self.pos }));
        }
        let v: u64 = text.parse().map_err(|_| self.err(start, "integer literal too large"))?;
        self.int_suffix(start, v)
    }

    fn int_suffix(&mut self, start: usize, v: u64) -> Result<(Tok, Span), SyntaxError> {
        let b = self.src.as_bytes();
        if self.pos < b.len() && (b[self.pos] == b'u' || b[self.pos] == b'U') {
            self.pos += 1;
            return Ok((Tok::UInt(v), Span { start, end: self.pos }));
        }
        // `-9223372036854775808` is handled by the parser folding negation.
        let tok = if v == 1 << 63 {
            Tok::UInt(v)
        } else {
            Tok::Int(i64::try_from(v).map_err(|_| self.err(start, "integer literal too large"))?)
        };
        Ok((tok, Span { start, end: self.pos }))
    }

    fn string(&mut self, start: usize, raw: bool) -> Result<(Tok, Span), SyntaxError> {
        let q = self.src.as_bytes()[self.pos];
        let triple = self.src[self.pos..].starts_with(if q == b'"' { "\"\"\"" } else { "'''" });
        let delim: &str = match (q, triple) {
            (b'"', true) => "\"\"\"",
            (b'"', false) => "\"",
            (_, true) => "'''",
            _ => "'",
        };
        self.pos += delim.len();
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            if rest.starts_with(delim) {
                self.pos += delim.len();
                return Ok((Tok::Str(out), Span { start, end: self.pos }));
            }
            let Some(ch) = rest.chars().next() else {
                return Err(self.err(start, "unterminated string"));
            };
            if ch == '\n' && !triple {
                return Err(self.err(start, "unterminated string (newline before the closing quote)"));
            }
            self.pos += ch.len_utf8();
            if ch != '\\' || raw {
                out.push(ch);
                continue;
            }
            let Some(e) = self.src[self.pos..].chars().next() else {
                return Err(self.err(start, "unterminated string"));
            };
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' | '"' | '\'' | '`' | '?' => out.push(e),
                // CEL's octal escapes: exactly three digits, at most \377
                '0'..='3' => {
                    let rest = self.src.get(self.pos..self.pos + 2).ok_or_else(|| self.err(start, "short escape"))?;
                    let oct = format!("{e}{rest}");
                    let cp = u32::from_str_radix(&oct, 8).map_err(|_| self.err(self.pos, "invalid octal escape"))?;
                    out.push(char::from_u32(cp).ok_or_else(|| self.err(self.pos, "invalid code point"))?);
                    self.pos += 2;
                }
                'u' | 'U' | 'x' | 'X' => {
                    let n = match e {
                        'x' | 'X' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = self.src.get(self.pos..self.pos + n).ok_or_else(|| self.err(start, "short escape"))?;
                    let cp = u32::from_str_radix(hex, 16).map_err(|_| self.err(self.pos, "invalid escape"))?;
                    out.push(char::from_u32(cp).ok_or_else(|| self.err(self.pos, "invalid code point"))?);
                    self.pos += n;
                }
                other => return Err(self.err(self.pos - 1, format!("unknown escape `\\{other}`"))),
            }
        }
    }
}

/// Parse a CEL expression into its syntax tree.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    if src.len() > MAX_LEN {
        return Err(SyntaxError {
            span: Span { start: 0, end: 0 },
            message: format!("expression longer than {MAX_LEN} bytes"),
        });
    }
    let mut p = Parser { lex: Lexer { src, pos: 0 }, tok: Tok::Eof, span: Span::default(), depth: 0 };
    p.bump()?;
    let e = p.expr()?;
    if p.tok != Tok::Eof {
        return Err(p.unexpected("end of expression"));
    }
    Ok(e)
}

struct Parser<'s> {
    lex: Lexer<'s>,
    tok: Tok,
    span: Span,
    depth: usize,
}

impl Parser<'_> {
    fn bump(&mut self) -> Result<(), SyntaxError> {
        let (t, s) = self.lex.next()?;
        self.tok = t;
        self.span = s;
        Ok(())
    }

    fn unexpected(&self, wanted: &str) -> SyntaxError {
        let found = match &self.tok {
            Tok::Eof => "end of expression".to_string(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Str(_) => "a string".to_string(),
            _ => "a number".to_string(),
        };
        SyntaxError { span: self.span, message: format!("expected {wanted}, found {found}") }
    }

    fn is(&self, p: &str) -> bool {
        matches!(self.tok, Tok::Punct(q) if q == p)
    }

    fn expect(&mut self, p: &str) -> Result<(), SyntaxError> {
        if self.is(p) { self.bump() } else { Err(self.unexpected(&format!("`{p}`"))) }
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                span: self.span,
                message: format!("expression nests deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.enter()?;
        let c = self.binary(0)?;
        let out = if self.is("?") {
            self.bump()?;
            let a = self.binary(0)?;
            self.expect(":")?;
            let b = self.expr()?;
            let span = Span { start: c.span.start, end: b.span.end };
            Expr { kind: ExprKind::Cond(Box::new(c), Box::new(a), Box::new(b)), span }
        } else {
            c
        };
        self.depth -= 1;
        Ok(out)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        Some(match &self.tok {
            Tok::Punct("||") => (BinOp::Or, 0),
            Tok::Punct("&&") => (BinOp::And, 1),
            Tok::Punct("==") => (BinOp::Eq, 2),
            Tok::Punct("!=") => (BinOp::Ne, 2),
            Tok::Punct("<") => (BinOp::Lt, 2),
            Tok::Punct("<=") => (BinOp::Le, 2),
            Tok::Punct(">") => (BinOp::Gt, 2),
            Tok::Punct(">=") => (BinOp::Ge, 2),
            Tok::Ident(s) if s == "in" => (BinOp::In, 2),
            Tok::Punct("+") => (BinOp::Add, 3),
            Tok::Punct("-") => (BinOp::Sub, 3),
            Tok::Punct("*") => (BinOp::Mul, 4),
            Tok::Punct("/") => (BinOp::Div, 4),
            Tok::Punct("%") => (BinOp::Rem, 4),
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8) -> Result<Expr, SyntaxError> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min {
                break;
            }
            self.bump()?;
            self.enter()?;
            let rhs = self.binary(prec + 1)?;
            self.depth -= 1;
            let span = Span { start: lhs.span.start, end: rhs.span.end };
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.span.start;
        let op = if self.is("!") {
            UnOp::Not
        } else if self.is("-") {
            UnOp::Neg
        } else {
            return self.member();
        };
        self.bump()?;
        self.enter()?;
        let inner = self.unary()?;
        self.depth -= 1;
        let span = Span { start, end: inner.span.end };
        // Fold negative literals so that i64::MIN is expressible.
        let kind = match (op, &inner.kind) {
            // `-(i64::MIN)` overflows: left to the evaluator, which reports it
            (UnOp::Neg, ExprKind::Int(v)) if *v != i64::MIN => ExprKind::Int(-v),
            (UnOp::Neg, ExprKind::UInt(v)) if *v == 1 << 63 => ExprKind::Int(i64::MIN),
            (UnOp::Neg, ExprKind::Double(v)) => ExprKind::Double(-v),
            _ => ExprKind::Unary(op, Box::new(inner)),
        };
        Ok(Expr { kind, span })
    }

    fn member(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        loop {
            if self.is(".") {
                self.bump()?;
                let Tok::Ident(name) = self.tok.clone() else {
                    return Err(self.unexpected("a field or method name after `.`"));
                };
                let end = self.span.end;
                self.bump()?;
                if self.is("(") {
                    let (args, end) = self.args(")")?;
                    let span = Span { start: e.span.start, end };
                    e = Expr { kind: ExprKind::Call { target: Some(Box::new(e)), func: name, args }, span };
                } else {
                    let span = Span { start: e.span.start, end };
                    e = Expr { kind: ExprKind::Select(Box::new(e), name), span };
                }
            } else if self.is("[") {
                self.bump()?;
                let idx = self.expr()?;
                let end = self.span.end;
                self.expect("]")?;
                let span = Span { start: e.span.start, end };
                e = Expr { kind: ExprKind::Index(Box::new(e), Box::new(idx)), span };
            } else {
                return Ok(e);
            }
        }
    }

    /// Parse `(a, b, c)` or `[a, b]` after the opening token; returns the end offset.
    fn args(&mut self, close: &str) -> Result<(Vec<Expr>, usize), SyntaxError> {
        self.bump()?;
        let mut out = Vec::new();
        while !self.is(close) {
            out.push(self.expr()?);
            if self.is(",") {
                self.bump()?;
            } else if !self.is(close) {
                return Err(self.unexpected(&format!("`,` or `{close}`")));
            }
        }
        let end = self.span.end;
        self.bump()?;
        Ok((out, end))
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let span = self.span;
        let kind = match self.tok.clone() {
            Tok::Int(v) => ExprKind::Int(v),
            Tok::UInt(v) => ExprKind::UInt(v),
            Tok::Double(v) => ExprKind::Double(v),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Ident(name) => match name.as_str() {
                "true" => ExprKind::Bool(true),
                "false" => ExprKind::Bool(false),
                "null" => ExprKind::Null,
                "in" => return Err(self.unexpected("an expression")),
                _ => {
                    self.bump()?;
                    if self.is("(") {
                        let (args, end) = self.args(")")?;
                        return Ok(Expr {
                            kind: ExprKind::Call { target: None, func: name, args },
                            span: Span { start: span.start, end },
                        });
                    }
                    return Ok(Expr { kind: ExprKind::Ident(name), span });
                }
            },
            Tok::Punct("(") => {
                self.bump()?;
                let inner = self.expr()?;
                self.expect(")")?;
                return Ok(inner);
            }
            Tok::Punct("[") => {
                let (items, end) = self.args("]")?;
                return Ok(Expr { kind: ExprKind::List(items), span: Span { start: span.start, end } });
            }
            Tok::Punct("{") => {
                self.bump()?;
                let mut entries = Vec::new();
                while !self.is("}") {
                    let k = self.expr()?;
                    self.expect(":")?;
                    let v = self.expr()?;
                    entries.push((k, v));
                    if self.is(",") {
                        self.bump()?;
                    } else if !self.is("}") {
                        return Err(self.unexpected("`,` or `}`"));
                    }
                }
                let end = self.span.end;
                self.bump()?;
                return Ok(Expr { kind: ExprKind::Map(entries), span: Span { start: span.start, end } });
            }
            _ => return Err(self.unexpected("an expression")),
        };
        self.bump()?;
        Ok(Expr { kind, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("a || b && c == 1 + 2 * 3").unwrap();
        let ExprKind::Binary(BinOp::Or, _, rhs) = e.kind else { panic!("{e:?}") };
        let ExprKind::Binary(BinOp::And, _, rhs) = rhs.kind else { panic!() };
        let ExprKind::Binary(BinOp::Eq, _, rhs) = rhs.kind else { panic!() };
        let ExprKind::Binary(BinOp::Add, _, rhs) = rhs.kind else { panic!() };
        assert!(matches!(rhs.kind, ExprKind::Binary(BinOp::Mul, _, _)));
    }

    #[test]
    fn members_calls_and_literals() {
        parse(r#"args.tags.exists(t, t == "crown_jewel") && size(args.hosts) > 3u"#).unwrap();
        parse(r#"{"a": [1, 2.5, -3, 'x', r"\d+", """tri"""]}["a"][0] == 1 ? true : null"#).unwrap();
        assert_eq!(parse("-9223372036854775808").unwrap().kind, ExprKind::Int(i64::MIN));
        // negating i64::MIN again is not folded (it would overflow while parsing)
        assert!(matches!(parse("-(-9223372036854775808)").unwrap().kind, ExprKind::Unary(UnOp::Neg, _)));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("name == ").unwrap_err();
        assert_eq!(e.span.start, 8);
        let e = parse("name === 'x'").unwrap_err();
        assert_eq!(e.span.start, 7);
        assert!(parse("'open").unwrap_err().message.contains("unterminated"));
        assert!(parse(&"(".repeat(500)).unwrap_err().message.contains("nests"));
        assert!(parse("a.").is_err());
        assert!(parse("a ? b").is_err());
        assert!(parse("#").is_err());
    }
}
