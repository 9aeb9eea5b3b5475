//! The JMESPath lexer, following `jmespath/lexer.py`: token names, positions
//! and error messages are the ones `jmespath.py` reports.

use serde_json::Value;

use super::QueryError;
use crate::awscli::python::{py_str, spaces};

/// A JMESPath token kind; [`Tok::type_name`] gives the name `jmespath.py`
/// uses for it in error messages.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Quoted(String),
    Literal(Value),
    Number(i64),
    Dot,
    Star,
    LBracket,
    RBracket,
    Flatten,
    Filter,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Colon,
    Pipe,
    Or,
    And,
    Not,
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Current,
    Expref,
    Eof,
}

impl Tok {
    /// The token type as `jmespath.py` names it (`unquoted_identifier`, ...).
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Tok::Ident(_) => "unquoted_identifier",
            Tok::Quoted(_) => "quoted_identifier",
            Tok::Literal(_) => "literal",
            Tok::Number(_) => "number",
            Tok::Dot => "dot",
            Tok::Star => "star",
            Tok::LBracket => "lbracket",
            Tok::RBracket => "rbracket",
            Tok::Flatten => "flatten",
            Tok::Filter => "filter",
            Tok::LBrace => "lbrace",
            Tok::RBrace => "rbrace",
            Tok::LParen => "lparen",
            Tok::RParen => "rparen",
            Tok::Comma => "comma",
            Tok::Colon => "colon",
            Tok::Pipe => "pipe",
            Tok::Or => "or",
            Tok::And => "and",
            Tok::Not => "not",
            Tok::Eq => "eq",
            Tok::Ne => "ne",
            Tok::Lt => "lt",
            Tok::Lte => "lte",
            Tok::Gt => "gt",
            Tok::Gte => "gte",
            Tok::Current => "current",
            Tok::Expref => "expref",
            Tok::Eof => "eof",
        }
    }
}

/// A token and where it was found, for error messages.
#[derive(Debug, Clone)]
pub(super) struct Token {
    /// Kind and value.
    pub(super) tok: Tok,
    /// Start, in characters (as `jmespath.py` counts).
    pub(super) start: usize,
    /// Token value as `jmespath.py` would print it in an error.
    pub(super) text: String,
}

/// Split `expr` into tokens, ending with [`Tok::Eof`], failing with the
/// `jmespath.py` lexer's message on the first character it cannot take.
pub(super) fn lex(expr: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = expr.chars().collect();
    let lex_err = |pos: usize, msg: String| QueryError::Syntax {
        expression: expr.to_string(),
        message: format!("Bad jmespath expression: {msg}:\n{expr}\n{}^", spaces(pos)),
    };
    // Consume from the delimiter at `start` up to its closing twin; a
    // backslash keeps itself and the following character.
    let consume_until = |start: usize, delim: char| -> Result<(String, usize), QueryError> {
        let mut buf = String::new();
        let mut i = start + 1;
        loop {
            let mut c = chars.get(i).copied();
            if c == Some(delim) {
                return Ok((buf, i + 1));
            }
            if c == Some('\\') {
                buf.push('\\');
                i += 1;
                c = chars.get(i).copied();
            }
            match c {
                None => return Err(lex_err(start, format!("Unclosed {delim} delimiter"))),
                Some(c) => buf.push(c),
            }
            i += 1;
        }
    };
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let simple = |tok: Tok, len: usize| Token {
            tok,
            start,
            text: chars[start..start + len].iter().collect(),
        };
        let next = chars.get(i + 1).copied();
        let token = match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '.' => simple(Tok::Dot, 1),
            '*' => simple(Tok::Star, 1),
            ']' => simple(Tok::RBracket, 1),
            ',' => simple(Tok::Comma, 1),
            ':' => simple(Tok::Colon, 1),
            '@' => simple(Tok::Current, 1),
            '(' => simple(Tok::LParen, 1),
            ')' => simple(Tok::RParen, 1),
            '{' => simple(Tok::LBrace, 1),
            '}' => simple(Tok::RBrace, 1),
            '[' => match next {
                Some(']') => simple(Tok::Flatten, 2),
                Some('?') => simple(Tok::Filter, 2),
                _ => simple(Tok::LBracket, 1),
            },
            '|' if next == Some('|') => simple(Tok::Or, 2),
            '|' => simple(Tok::Pipe, 1),
            '&' if next == Some('&') => simple(Tok::And, 2),
            '&' => simple(Tok::Expref, 1),
            '<' if next == Some('=') => simple(Tok::Lte, 2),
            '<' => simple(Tok::Lt, 1),
            '>' if next == Some('=') => simple(Tok::Gte, 2),
            '>' => simple(Tok::Gt, 1),
            '!' if next == Some('=') => simple(Tok::Ne, 2),
            '!' => simple(Tok::Not, 1),
            '=' if next == Some('=') => simple(Tok::Eq, 2),
            '=' => return Err(lex_err(start, "Unknown token '='".to_string())),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i..j].iter().collect();
                Token {
                    tok: Tok::Ident(name.clone()),
                    start,
                    text: name,
                }
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                let buf: String = chars[i..j].iter().collect();
                if buf == "-" {
                    return Err(lex_err(start, "Unknown token '-'".to_string()));
                }
                let n: i64 = buf
                    .parse()
                    .map_err(|_| lex_err(start, format!("Bad number {buf}")))?;
                Token {
                    tok: Tok::Number(n),
                    start,
                    text: buf,
                }
            }
            '\'' => {
                let (buf, end) = consume_until(start, '\'')?;
                let s = buf.replace("\\'", "'");
                toks.push(Token {
                    tok: Tok::Literal(Value::String(s.clone())),
                    start,
                    text: s,
                });
                i = end;
                continue;
            }
            '`' => {
                let (buf, end) = consume_until(start, '`')?;
                let lexeme = buf.replace("\\`", "`");
                let parsed = serde_json::from_str::<Value>(&lexeme)
                    .or_else(|_| {
                        serde_json::from_str::<Value>(&format!("\"{}\"", lexeme.trim_start()))
                    })
                    .map_err(|_| lex_err(start, format!("Bad token {lexeme}")))?;
                toks.push(Token {
                    text: py_str(&parsed),
                    tok: Tok::Literal(parsed),
                    start,
                });
                i = end;
                continue;
            }
            '"' => {
                let (buf, end) = consume_until(start, '"')?;
                let name: String = serde_json::from_str(&format!("\"{buf}\""))
                    .map_err(|_| lex_err(start, "Invalid quoted identifier".to_string()))?;
                toks.push(Token {
                    tok: Tok::Quoted(name.clone()),
                    start,
                    text: name,
                });
                i = end;
                continue;
            }
            other => return Err(lex_err(start, format!("Unknown token {other}"))),
        };
        i += token.text.chars().count().max(1);
        toks.push(token);
    }
    toks.push(Token {
        tok: Tok::Eof,
        start: chars.len(),
        text: String::new(),
    });
    Ok(toks)
}
