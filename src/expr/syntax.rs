//! Lexer and recursive-descent parser for audience and segment expressions.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! or      := and ( "||" and )*
//! and     := not ( "&&" not )*
//! cmp     := add ( ("=="|"!="|"<"|"<="|">"|">="|"in"|"not" "in") add )?
//! add     := mul ( ("+"|"-") mul )*
//! mul     := unary ( ("*"|"/") unary )*
//! unary   := ("!"|"-") unary | postfix
//! postfix := primary ( "." ident ( "(" args ")" )? )*
//! primary := number | duration | string | "true" | "false" | "[" list "]" | "(" or ")" | ident ( "(" args ")" )?
//! ```
//!
//! The parser is total: it never panics, recursion is bounded by [`MAX_DEPTH`], and every error carries the
//! byte range of the offending text so the bundle loader can point at it.

use super::ast::{BinOp, Expr, ExprKind, Ident, UnOp};

/// Deepest nesting accepted; deeper input is rejected before it can exhaust the stack.
pub const MAX_DEPTH: usize = 64;
/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 8 * 1024;

/// A syntax error with a byte range into the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    /// Lowercase message.
    pub message: String,
    /// Byte range in the expression.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
    /// Optional hint.
    pub help: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Dur(i64),
    Str(String),
    Ident(String),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Dot,
    AndAnd,
    OrOr,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn err(message: impl Into<String>, start: usize, end: usize) -> SyntaxError {
    SyntaxError {
        message: message.into(),
        start,
        end,
        help: None,
    }
}

fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        let start = i;
        let single = |t: Tok| Token {
            tok: t,
            start,
            end: start + 1,
        };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                // Comment to end of line: long audiences in TOML multi-line strings can be annotated.
                while let Some(&c) = bytes.get(i) {
                    if c == b'\n' {
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b'[' => out.push(single(Tok::LBrack)),
            b']' => out.push(single(Tok::RBrack)),
            b',' => out.push(single(Tok::Comma)),
            b'.' => out.push(single(Tok::Dot)),
            b'+' => out.push(single(Tok::Plus)),
            b'-' => out.push(single(Tok::Minus)),
            b'*' => out.push(single(Tok::Star)),
            b'/' => out.push(single(Tok::Slash)),
            b'&' | b'|' | b'=' | b'!' | b'<' | b'>' => {
                let next = bytes.get(i + 1).copied();
                let (tok, len) = match (c, next) {
                    (b'&', Some(b'&')) => (Tok::AndAnd, 2),
                    (b'|', Some(b'|')) => (Tok::OrOr, 2),
                    (b'=', Some(b'=')) => (Tok::EqEq, 2),
                    (b'!', Some(b'=')) => (Tok::NotEq, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'!', _) => (Tok::Bang, 1),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'&', _) => {
                        return Err(SyntaxError {
                            help: Some("use `&&` for \"and\"".into()),
                            ..err("unexpected `&`", i, i + 1)
                        })
                    }
                    (b'|', _) => {
                        return Err(SyntaxError {
                            help: Some("use `||` for \"or\"".into()),
                            ..err("unexpected `|`", i, i + 1)
                        })
                    }
                    _ => {
                        return Err(SyntaxError {
                            help: Some("use `==` to compare".into()),
                            ..err("unexpected `=`", i, i + 1)
                        })
                    }
                };
                out.push(Token {
                    tok,
                    start,
                    end: start + len,
                });
                i += len;
                continue;
            }
            b'"' | b'\'' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(ch) = src.get(i..).and_then(|r| r.chars().next()) else {
                        return Err(err("unterminated string", start, src.len()));
                    };
                    i += ch.len_utf8();
                    if ch as u32 == u32::from(quote) {
                        break;
                    }
                    if ch == '\\' {
                        let Some(esc) = src.get(i..).and_then(|r| r.chars().next()) else {
                            return Err(err("unterminated string", start, src.len()));
                        };
                        i += esc.len_utf8();
                        match esc {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            '\\' => s.push('\\'),
                            '"' => s.push('"'),
                            '\'' => s.push('\''),
                            other => {
                                return Err(SyntaxError {
                                    help: Some("escapes are \\n \\t \\\\ \\\" \\'".into()),
                                    ..err(
                                        format!("unknown escape `\\{other}`"),
                                        i - 1 - other.len_utf8(),
                                        i,
                                    )
                                })
                            }
                        }
                    } else {
                        s.push(ch);
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    start,
                    end: i,
                });
                continue;
            }
            b'0'..=b'9' => {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
                {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                }
                let digits: String = src
                    .get(start..i)
                    .unwrap_or("")
                    .chars()
                    .filter(|c| *c != '_')
                    .collect();
                // A unit suffix right after the number makes a duration literal: 30d, 12h, 15m, 45s, 2w, 500ms.
                let unit_start = i;
                while bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
                    i += 1;
                }
                let unit = src.get(unit_start..i).unwrap_or("");
                let value: f64 = digits
                    .parse()
                    .map_err(|_| err("invalid number", start, i))?;
                if unit.is_empty() {
                    out.push(Token {
                        tok: Tok::Num(value),
                        start,
                        end: i,
                    });
                } else {
                    let ms_per =
                        match unit {
                            "ms" => 1.0,
                            "s" => 1_000.0,
                            "m" => 60_000.0,
                            "h" => 3_600_000.0,
                            "d" => 86_400_000.0,
                            "w" => 604_800_000.0,
                            _ => return Err(SyntaxError {
                                help: Some(
                                    "duration units are `ms`, `s`, `m`, `h`, `d`, `w`, e.g. `30d`"
                                        .into(),
                                ),
                                ..err(format!("unknown duration unit `{unit}`"), unit_start, i)
                            }),
                        };
                    let ms = value * ms_per;
                    if !(0.0..=9.0e15).contains(&ms) {
                        return Err(err("duration out of range", start, i));
                    }
                    out.push(Token {
                        tok: Tok::Dur(ms as i64),
                        start,
                        end: i,
                    });
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                let word = src.get(start..i).unwrap_or("").to_string();
                out.push(Token {
                    tok: Tok::Ident(word),
                    start,
                    end: i,
                });
                continue;
            }
            _ => {
                let ch = src.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                let help = match ch {
                    '“' | '”' | '‘' | '’' => {
                        Some("use straight quotes `\"` or `'`".to_string())
                    }
                    _ => None,
                };
                return Err(SyntaxError {
                    help,
                    ..err(format!("unexpected character `{ch}`"), i, i + ch.len_utf8())
                });
            }
        }
        i += 1;
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    depth: usize,
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    if src.len() > MAX_LEN {
        return Err(err(
            format!(
                "expression is {} bytes long; the limit is {MAX_LEN}",
                src.len()
            ),
            0,
            0,
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(SyntaxError {
            help: Some("write a condition, e.g. `true`".into()),
            ..err("empty expression", 0, 0)
        });
    }
    let e = p.or()?;
    let t = p.token();
    if t.tok != Tok::Eof {
        return Err(SyntaxError {
            help: Some("combine conditions with `&&` or `||`".into()),
            ..err(format!("unexpected {}", describe(&t.tok)), t.start, t.end)
        });
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number `{n}`"),
        Tok::Dur(_) => "duration".into(),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Ident(w) => format!("`{w}`"),
        Tok::Eof => "end of expression".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrack => "`[`".into(),
        Tok::RBrack => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::AndAnd => "`&&`".into(),
        Tok::OrOr => "`||`".into(),
        Tok::Bang => "`!`".into(),
        Tok::EqEq => "`==`".into(),
        Tok::NotEq => "`!=`".into(),
        Tok::Lt => "`<`".into(),
        Tok::Le => "`<=`".into(),
        Tok::Gt => "`>`".into(),
        Tok::Ge => "`>=`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
        Tok::Star => "`*`".into(),
        Tok::Slash => "`/`".into(),
    }
}

const EOF_TOKEN: Token = Token {
    tok: Tok::Eof,
    start: 0,
    end: 0,
};

impl Parser<'_> {
    fn token(&self) -> &Token {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .unwrap_or(&EOF_TOKEN)
    }
    fn peek(&self) -> &Tok {
        &self.token().tok
    }
    fn peek2(&self) -> &Tok {
        self.toks
            .get(self.pos + 1)
            .map(|t| &t.tok)
            .unwrap_or(&Tok::Eof)
    }
    fn bump(&mut self) -> Token {
        let t = self.token().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, SyntaxError> {
        let t = self.token().clone();
        if t.tok == want {
            self.pos += 1;
            Ok(t)
        } else {
            Err(err(
                format!("expected {what}, found {}", describe(&t.tok)),
                t.start,
                t.end,
            ))
        }
    }
    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.token();
            return Err(err(
                format!("expression nests deeper than {MAX_DEPTH} levels"),
                t.start,
                t.end,
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.peek() == &Tok::OrOr {
            self.bump();
            let right = self.and()?;
            left = Expr::binary(BinOp::Or, left, right);
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.cmp()?;
        while self.peek() == &Tok::AndAnd {
            self.bump();
            let right = self.cmp()?;
            left = Expr::binary(BinOp::And, left, right);
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, SyntaxError> {
        let left = self.add()?;
        let op = match self.peek() {
            Tok::EqEq => BinOp::Eq,
            Tok::NotEq => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Ident(w) if w == "in" => BinOp::In,
            Tok::Ident(w) if w == "not" && matches!(self.peek2(), Tok::Ident(x) if x == "in") => {
                self.bump();
                BinOp::NotIn
            }
            _ => return Ok(left),
        };
        self.bump();
        let right = self.add()?;
        if matches!(
            self.peek(),
            Tok::EqEq | Tok::NotEq | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge
        ) {
            let t = self.token();
            return Err(SyntaxError {
                help: Some("comparisons do not chain; write `a < b && b < c`".into()),
                ..err("comparison operators cannot be chained", t.start, t.end)
            });
        }
        Ok(Expr::binary(op, left, right))
    }

    fn add(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.mul()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.mul()?;
            left = Expr::binary(op, left, right);
        }
    }

    fn mul(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.unary()?;
            left = Expr::binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let op = match self.peek() {
            Tok::Bang => UnOp::Not,
            Tok::Minus => UnOp::Neg,
            Tok::Ident(w) if w == "not" => {
                let t = self.token();
                return Err(SyntaxError {
                    help: Some("use `!` for negation, or `not in` for list membership".into()),
                    ..err("unexpected `not`", t.start, t.end)
                });
            }
            _ => return self.postfix(),
        };
        self.enter()?;
        let t = self.bump();
        let inner = self.unary()?;
        self.depth -= 1;
        let end = inner.end;
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(inner)),
            start: t.start,
            end,
        })
    }

    fn args(&mut self) -> Result<(Vec<Expr>, usize), SyntaxError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if self.peek() != &Tok::RParen {
            loop {
                args.push(self.or()?);
                if self.peek() == &Tok::Comma {
                    self.bump();
                    continue;
                }
                break;
            }
        }
        let close = self.expect(Tok::RParen, "`)` or `,`")?;
        Ok((args, close.end))
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        while self.peek() == &Tok::Dot {
            self.bump();
            let t = self.bump();
            let Tok::Ident(name) = t.tok else {
                return Err(err(
                    format!("expected a name after `.`, found {}", describe(&t.tok)),
                    t.start,
                    t.end,
                ));
            };
            let ident = Ident {
                name,
                start: t.start,
                end: t.end,
            };
            if self.peek() == &Tok::LParen {
                let (args, end) = self.args()?;
                let start = e.start;
                e = Expr {
                    kind: ExprKind::Method(Box::new(e), ident, args),
                    start,
                    end,
                };
            } else if let ExprKind::Path(parts) = &mut e.kind {
                e.end = ident.end;
                parts.push(ident);
            } else {
                let (start, end) = (e.start, ident.end);
                e = Expr {
                    kind: ExprKind::Member(Box::new(e), ident),
                    start,
                    end,
                };
            }
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let t = self.bump();
        let kind = match t.tok {
            Tok::Num(n) => ExprKind::Num(n),
            Tok::Dur(ms) => ExprKind::Duration(ms),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::LParen => {
                let inner = self.or()?;
                let close = self.expect(Tok::RParen, "`)`")?;
                return Ok(Expr {
                    kind: inner.kind,
                    start: t.start,
                    end: close.end,
                });
            }
            Tok::LBrack => {
                let mut items = Vec::new();
                if self.peek() != &Tok::RBrack {
                    loop {
                        items.push(self.add()?);
                        if self.peek() == &Tok::Comma {
                            self.bump();
                            if self.peek() == &Tok::RBrack {
                                break;
                            }
                            continue;
                        }
                        break;
                    }
                }
                let close = self.expect(Tok::RBrack, "`]` or `,`")?;
                return Ok(Expr {
                    kind: ExprKind::List(items),
                    start: t.start,
                    end: close.end,
                });
            }
            Tok::Ident(w) if w == "true" => ExprKind::Bool(true),
            Tok::Ident(w) if w == "false" => ExprKind::Bool(false),
            Tok::Ident(name) => {
                let ident = Ident {
                    name,
                    start: t.start,
                    end: t.end,
                };
                if self.peek() == &Tok::LParen {
                    let (args, end) = self.args()?;
                    return Ok(Expr {
                        kind: ExprKind::Call(ident, args),
                        start: t.start,
                        end,
                    });
                }
                ExprKind::Path(vec![ident])
            }
            Tok::Eof => {
                return Err(SyntaxError {
                    help: Some("the expression ends too early".into()),
                    ..err("expected a value, found end of expression", t.start, t.end)
                })
            }
            other => {
                return Err(err(
                    format!("expected a value, found {}", describe(&other)),
                    t.start,
                    t.end,
                ))
            }
        };
        Ok(Expr {
            kind,
            start: t.start,
            end: t.end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence() {
        let e = parse("a.b == 1 || c && !d").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert!(matches!(e.kind, ExprKind::Binary(BinOp::Or, _, _)));
    }

    #[test]
    fn method_chain() {
        let e = parse("profile.purchases.within(90d).where(category == \"shoes\").count() >= 2");
        assert!(e.is_ok(), "{e:?}");
    }

    #[test]
    fn errors_have_spans() {
        let e = parse("geo.country == ").err();
        assert!(e.is_some());
        let e = parse("a = 1").err().map(|e| (e.start, e.end));
        assert_eq!(e, Some((2, 3)));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let src = format!("{}true{}", "(".repeat(1_000), ")".repeat(1_000));
        assert!(parse(&src).is_err());
        let src = format!("{}true", "!".repeat(1_000));
        assert!(parse(&src).is_err());
    }
}
