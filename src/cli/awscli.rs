//! AWS CLI look-alike helpers for the `kmsfs kms ...` subcommands.
//!
//! * [`OutputFormat`] and [`render`]: the AWS CLI `--output json` (Python
//!   `json.dumps(indent=4, ensure_ascii=False)`) and `--output text`
//!   (`awscli/text.py`) formatters.
//! * [`apply_query`]: a JMESPath subset for `--query`, following the
//!   reference implementation (`jmespath.py`) used by the AWS CLI.
//! * [`read_blob_arg`], [`read_text_arg`], [`parse_string_map`],
//!   [`parse_tags`]: argument readers following the AWS CLI v2 rules for
//!   `file://` / `fileb://` paramfiles, blob base64 decoding, JSON and
//!   shorthand syntax.
//!
//! Object key order is taken from the `serde_json::Map`, so serde_json must be
//! built with the `preserve_order` feature for JSON output to keep the order
//! of the documents it renders.
//!
//! This module is self-contained: it uses only `std`, `serde_json`, `base64`
//! and `thiserror`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A problem with a command-line argument value.
///
/// Variants wrapped by the AWS CLI in its `ParamError` print as
/// `Error parsing parameter: ...`; use [`ArgError::with_param`] to get the
/// exact AWS wording including the option name
/// (`Error parsing parameter '--plaintext': ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A problem the AWS CLI reports as a `ParamError`.
    #[error("Error parsing parameter: {0}")]
    Param(ParamProblem),
    /// A blob value that is not valid base64 (AWS CLI v2,
    /// `cli_binary_format=base64`). `reason` is Python's `binascii` message,
    /// which the AWS CLI does not show.
    #[error("Invalid base64: \"{value}\"")]
    InvalidBase64 { value: String, reason: String },
    /// botocore-style parameter validation failure; one message per problem.
    #[error("Parameter validation failed:\n{}", .0.join("\n"))]
    Validation(Vec<String>),
    /// A list option given no value at all (argparse `nargs='+'`).
    #[error("expected at least one argument")]
    NoValues,
    /// `--output` value other than `json` / `text`.
    #[error(
        "argument --output: Invalid choice, valid choices are:\n\njson                                     | text"
    )]
    InvalidOutputFormat(String),
}

impl ArgError {
    /// The message the AWS CLI prints when this error concerns `cli_name`
    /// (for example `--plaintext`).
    pub fn with_param(&self, cli_name: &str) -> String {
        match self {
            ArgError::Param(p) => format!("Error parsing parameter '{cli_name}': {p}"),
            ArgError::NoValues => format!("argument {cli_name}: expected at least one argument"),
            other => other.to_string(),
        }
    }
}

/// The message part of an AWS CLI `ParamError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamProblem {
    /// The paramfile could not be opened or read. `arg` is the argument as
    /// given (`file://x`), `reason` is Python-style
    /// (`[Errno 2] No such file or directory: 'x'`).
    #[error("Unable to load paramfile {arg}: {reason}")]
    Unreadable { arg: String, reason: String },
    /// A `file://` paramfile that is not valid UTF-8 text.
    #[error(
        "Unable to load paramfile ({path}), text contents could not be decoded.  If this is a binary file, please use the fileb:// prefix instead of the file:// prefix."
    )]
    NotText { path: String },
    /// A `fileb://` paramfile used for a string parameter whose bytes are not
    /// UTF-8 (kmsfs wording: the AWS CLI would pass the bytes on as-is).
    #[error("Unable to load paramfile ({path}), contents are not valid UTF-8 text.")]
    NotUtf8 { path: String },
    /// The value looked like JSON (`{` or `[`) but did not parse.
    #[error("Invalid JSON: {error}\nJSON received: {json}")]
    InvalidJson { error: String, json: String },
    /// Shorthand syntax error, in the AWS CLI's shorthand parser wording.
    #[error("{0}")]
    Shorthand(String),
}

/// A `--query` expression that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Syntax error; `message` follows the wording of `jmespath.py`.
    #[error("Bad value for --query {expression}: {message}")]
    Syntax { expression: String, message: String },
    /// Valid JMESPath that this subset does not implement (functions,
    /// expression references, zero slice step).
    #[error("Bad value for --query {expression}: {message}")]
    Unsupported { expression: String, message: String },
}

// ---------------------------------------------------------------------------
// Output format and rendering
// ---------------------------------------------------------------------------

/// `--output` format. Only `json` (the AWS default) and `text` are supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Json,
    Text,
}

impl FromStr for OutputFormat {
    type Err = ArgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(OutputFormat::Json),
            "text" => Ok(OutputFormat::Text),
            other => Err(ArgError::InvalidOutputFormat(other.to_string())),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Json => "json",
            OutputFormat::Text => "text",
        })
    }
}

/// Render `value` like the AWS CLI does, including the trailing newline.
///
/// `Json` is byte-for-byte Python `json.dumps(value, indent=4,
/// ensure_ascii=False)` plus `"\n"` (floats use Python's `repr`). Note that
/// the AWS CLI prints nothing at all for an empty top-level response `{}`;
/// that decision is left to the caller.
///
/// `Text` follows `awscli/text.py`.
pub fn render(value: &Value, format: OutputFormat) -> String {
    let mut out = String::new();
    match format {
        OutputFormat::Json => {
            write_json(&mut out, value, 0);
            out.push('\n');
        }
        OutputFormat::Text => text_item(&mut out, value, None, None),
    }
    out
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_json(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                push_indent(out, indent + 4);
                write_json(out, item, indent + 4);
            }
            out.push('\n');
            push_indent(out, indent);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                push_indent(out, indent + 4);
                out.push_str(&json_string(k));
                out.push_str(": ");
                write_json(out, v, indent + 4);
            }
            out.push('\n');
            push_indent(out, indent);
            out.push('}');
        }
    }
}

/// JSON string literal; serde_json escapes exactly the characters Python's
/// `json.dumps(ensure_ascii=False)` escapes (`"`, `\`, controls < 0x20).
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Python `repr()` / `str()` of a JSON number.
fn py_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        py_float(n.as_f64().unwrap_or(0.0))
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form when the
/// decimal exponent is < -4 or >= 16.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    if !(-4 < decpt && decpt <= 16) {
        let mut s = format!("{sign}{}", &digits[..1]);
        if n > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        s.push_str(&format!("e{esign}{:02}", exp.abs()));
        s
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{sign}{a}.{b}")
    }
}

/// Python `repr()` of a str.
fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `repr()` of a JSON value (as loaded by `json.loads`).
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => py_number(n),
        Value::String(s) => py_repr_str(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr_str(k), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python `str()` of a JSON value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python type name of a JSON value, as in `<class 'int'>`.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

// --- text output: a port of awscli/text.py -------------------------------

fn text_item(out: &mut String, item: &Value, ident: Option<&str>, scalar_keys: Option<&[String]>) {
    match item {
        Value::Object(map) => text_dict(out, map, ident, scalar_keys),
        Value::Array(list) => text_list(out, list, ident),
        scalar => {
            out.push_str(&py_str(scalar));
            out.push('\n');
        }
    }
}

fn text_list(out: &mut String, list: &[Value], ident: Option<&str>) {
    if list.is_empty() {
        return;
    }
    if list.iter().any(Value::is_object) {
        let mut keys: Vec<String> = list
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|m| {
                m.iter()
                    .filter(|(_, v)| is_scalar(v))
                    .map(|(k, _)| k.clone())
            })
            .collect();
        keys.sort();
        keys.dedup();
        for element in list {
            text_item(out, element, ident, Some(&keys));
        }
    } else if list.iter().any(Value::is_array) {
        let scalars: Vec<&Value> = list.iter().filter(|v| is_scalar(v)).collect();
        if !scalars.is_empty() {
            text_scalar_list(out, &scalars, ident);
        }
        for nested in list.iter().filter(|v| !is_scalar(v)) {
            text_item(out, nested, ident, None);
        }
    } else {
        let all: Vec<&Value> = list.iter().collect();
        text_scalar_list(out, &all, ident);
    }
}

fn text_scalar_list(out: &mut String, elements: &[&Value], ident: Option<&str>) {
    match ident {
        Some(id) => {
            let upper = id.to_uppercase();
            for e in elements {
                out.push_str(&upper);
                out.push('\t');
                out.push_str(&py_str(e));
                out.push('\n');
            }
        }
        None => {
            let parts: Vec<String> = elements.iter().map(|e| py_str(e)).collect();
            out.push_str(&parts.join("\t"));
            out.push('\n');
        }
    }
}

fn text_dict(
    out: &mut String,
    map: &Map<String, Value>,
    ident: Option<&str>,
    scalar_keys: Option<&[String]>,
) {
    let mut scalars: Vec<String> = Vec::new();
    let mut nested: Vec<(&String, &Value)> = Vec::new();
    match scalar_keys {
        None => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in entries {
                if is_scalar(v) {
                    scalars.push(py_str(v));
                } else {
                    nested.push((k, v));
                }
            }
        }
        Some(keys) => {
            for k in keys {
                scalars.push(map.get(k).map(py_str).unwrap_or_default());
            }
            let mut rest: Vec<(&String, &Value)> =
                map.iter().filter(|(k, _)| !keys.contains(k)).collect();
            rest.sort_by(|a, b| a.0.cmp(b.0));
            nested = rest;
        }
    }
    if !scalars.is_empty() {
        if let Some(id) = ident {
            scalars.insert(0, id.to_uppercase());
        }
        out.push_str(&scalars.join("\t"));
        out.push('\n');
    }
    for (k, v) in nested {
        text_item(out, v, Some(k), None);
    }
}

// ---------------------------------------------------------------------------
// --query: JMESPath subset
// ---------------------------------------------------------------------------

/// Evaluate a `--query` expression against `value`.
///
/// Supported (with `jmespath.py` semantics, missing data gives `null`):
/// fields and quoted fields (`KeyId`, `"Key Id"`), sub-expressions
/// (`KeyMetadata.KeyId`), indexes (`Keys[0]`, `Keys[-1]`), slices
/// (`Keys[0:2]`), projections (`Keys[].KeyId`, `Keys[*].KeyId`, `*.Foo`),
/// filters (`Aliases[?AliasName=='alias/x'].TargetKeyId` with `==`, `!=`,
/// `<`, `<=`, `>`, `>=`, `&&`, `||`, `!`, parentheses), multiselect lists
/// (`[KeyId, Arn]`, `Keys[].[KeyId, KeyArn]`), multiselect hashes
/// (`{Id: KeyId}`), literals (`'raw'`, `` `json` ``), `@` and pipes.
/// Functions are not supported.
pub fn apply_query(value: &Value, query: &str) -> Result<Value, QueryError> {
    let node = Parser::parse(query)?;
    Ok(eval(&node, value))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
    fn type_name(&self) -> &'static str {
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

    fn binding_power(&self) -> u8 {
        match self {
            Tok::Pipe => 1,
            Tok::Or => 2,
            Tok::And => 3,
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => 5,
            Tok::Flatten => 9,
            Tok::Star => 20,
            Tok::Filter => 21,
            Tok::Dot => 40,
            Tok::Not => 45,
            Tok::LBrace => 50,
            Tok::LBracket => 55,
            Tok::LParen => 60,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Start, in characters (as `jmespath.py` counts).
    start: usize,
    /// Token value as `jmespath.py` would print it in an error.
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone)]
enum Node {
    Identity,
    Field(String),
    Sub(Box<Node>, Box<Node>),
    Index(i64),
    Slice(Option<i64>, Option<i64>, i64),
    Projection(Box<Node>, Box<Node>),
    ValueProjection(Box<Node>, Box<Node>),
    FilterProjection(Box<Node>, Box<Node>, Box<Node>),
    Flatten(Box<Node>),
    MultiList(Vec<Node>),
    MultiHash(Vec<(String, Node)>),
    Literal(Value),
    Pipe(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare(Cmp, Box<Node>, Box<Node>),
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

fn lex(expr: &str) -> Result<Vec<Token>, QueryError> {
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

struct Parser {
    expr: String,
    toks: Vec<Token>,
    pos: usize,
}

const PROJECTION_STOP: u8 = 10;

impl Parser {
    fn parse(expr: &str) -> Result<Node, QueryError> {
        if expr.is_empty() {
            return Err(QueryError::Syntax {
                expression: String::new(),
                message: "Invalid JMESPath expression: cannot be empty.".to_string(),
            });
        }
        let mut p = Parser {
            expr: expr.to_string(),
            toks: lex(expr)?,
            pos: 0,
        };
        let node = p.expression(0)?;
        if p.current() != &Tok::Eof {
            let t = p.token(0).clone();
            return Err(p.parse_error(&t, &format!("Unexpected token: {}", t.text)));
        }
        Ok(node)
    }

    fn token(&self, ahead: usize) -> &Token {
        let i = (self.pos + ahead).min(self.toks.len() - 1);
        &self.toks[i]
    }

    fn current(&self) -> &Tok {
        &self.token(0).tok
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
    }

    fn parse_error(&self, t: &Token, msg: &str) -> QueryError {
        QueryError::Syntax {
            expression: self.expr.clone(),
            message: format!(
                "{msg}: Parse error at column {}, token \"{}\" ({}), for expression:\n\"{}\"\n{}^",
                t.start,
                t.text,
                t.tok.type_name().to_uppercase(),
                self.expr,
                spaces(t.start + 1)
            ),
        }
    }

    fn incomplete(&self, t: &Token) -> QueryError {
        QueryError::Syntax {
            expression: self.expr.clone(),
            message: format!(
                "Invalid jmespath expression: Incomplete expression:\n\"{}\"\n{}^",
                self.expr,
                spaces(t.start + 1)
            ),
        }
    }

    fn unsupported(&self, what: &str) -> QueryError {
        QueryError::Unsupported {
            expression: self.expr.clone(),
            message: format!("{what} not supported by kmsfs"),
        }
    }

    /// `_raise_parse_error_maybe_eof`
    fn expect_error(&self, expected: &str) -> QueryError {
        let t = self.token(0);
        if t.tok == Tok::Eof {
            self.incomplete(t)
        } else {
            self.parse_error(
                t,
                &format!("Expecting: {expected}, got: {}", t.tok.type_name()),
            )
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), QueryError> {
        if *self.current() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.expect_error(tok.type_name()))
        }
    }

    fn expression(&mut self, rbp: u8) -> Result<Node, QueryError> {
        let t = self.token(0).clone();
        self.advance();
        let mut left = self.nud(t)?;
        while rbp < self.current().binding_power() {
            let t = self.token(0).clone();
            self.advance();
            left = self.led(t, left)?;
        }
        Ok(left)
    }

    fn nud(&mut self, t: Token) -> Result<Node, QueryError> {
        match t.tok {
            Tok::Ident(name) => Ok(Node::Field(name)),
            Tok::Quoted(name) => {
                if *self.current() == Tok::LParen {
                    let t = self.token(0).clone();
                    return Err(
                        self.parse_error(&t, "Quoted identifier not allowed for function names.")
                    );
                }
                Ok(Node::Field(name))
            }
            Tok::Literal(v) => Ok(Node::Literal(v)),
            Tok::Current => Ok(Node::Identity),
            Tok::Star => {
                let right = if *self.current() == Tok::RBracket {
                    Node::Identity
                } else {
                    self.projection_rhs(Tok::Star.binding_power())?
                };
                Ok(Node::ValueProjection(
                    Box::new(Node::Identity),
                    Box::new(right),
                ))
            }
            Tok::Filter => self.led_filter(Node::Identity),
            Tok::LBrace => self.multi_select_hash(),
            Tok::Flatten => {
                let left = Node::Flatten(Box::new(Node::Identity));
                let right = self.projection_rhs(Tok::Flatten.binding_power())?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Tok::LBracket => {
                if matches!(self.current(), Tok::Number(_) | Tok::Colon) {
                    let right = self.index_expression()?;
                    self.project_if_slice(Node::Identity, right)
                } else if *self.current() == Tok::Star && self.token(1).tok == Tok::RBracket {
                    self.advance();
                    self.advance();
                    let right = self.projection_rhs(Tok::Star.binding_power())?;
                    Ok(Node::Projection(Box::new(Node::Identity), Box::new(right)))
                } else {
                    self.multi_select_list()
                }
            }
            Tok::Not => {
                let e = self.expression(Tok::Not.binding_power())?;
                Ok(Node::Not(Box::new(e)))
            }
            Tok::LParen => {
                let e = self.expression(0)?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Expref => Err(self.unsupported("expression references (&) are")),
            Tok::Eof => Err(self.incomplete(&t)),
            _ => Err(self.parse_error(&t, "invalid token")),
        }
    }

    fn led(&mut self, t: Token, left: Node) -> Result<Node, QueryError> {
        match t.tok {
            Tok::Dot => {
                if *self.current() == Tok::Star {
                    self.advance();
                    let right = self.projection_rhs(Tok::Dot.binding_power())?;
                    Ok(Node::ValueProjection(Box::new(left), Box::new(right)))
                } else {
                    let right = self.dot_rhs(Tok::Dot.binding_power())?;
                    Ok(Node::Sub(Box::new(left), Box::new(right)))
                }
            }
            Tok::Pipe => {
                let right = self.expression(Tok::Pipe.binding_power())?;
                Ok(Node::Pipe(Box::new(left), Box::new(right)))
            }
            Tok::Or => {
                let right = self.expression(Tok::Or.binding_power())?;
                Ok(Node::Or(Box::new(left), Box::new(right)))
            }
            Tok::And => {
                let right = self.expression(Tok::And.binding_power())?;
                Ok(Node::And(Box::new(left), Box::new(right)))
            }
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => {
                let op = match t.tok {
                    Tok::Eq => Cmp::Eq,
                    Tok::Ne => Cmp::Ne,
                    Tok::Lt => Cmp::Lt,
                    Tok::Lte => Cmp::Lte,
                    Tok::Gt => Cmp::Gt,
                    _ => Cmp::Gte,
                };
                let right = self.expression(t.tok.binding_power())?;
                Ok(Node::Compare(op, Box::new(left), Box::new(right)))
            }
            Tok::Filter => self.led_filter(left),
            Tok::Flatten => {
                let left = Node::Flatten(Box::new(left));
                let right = self.projection_rhs(Tok::Flatten.binding_power())?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Tok::LBracket => {
                if matches!(self.current(), Tok::Number(_) | Tok::Colon) {
                    let right = self.index_expression()?;
                    self.project_if_slice(left, right)
                } else {
                    self.expect(Tok::Star)?;
                    self.expect(Tok::RBracket)?;
                    let right = self.projection_rhs(Tok::Star.binding_power())?;
                    Ok(Node::Projection(Box::new(left), Box::new(right)))
                }
            }
            Tok::LParen => Err(self.unsupported("functions are")),
            _ => Err(self.parse_error(&t, "invalid token")),
        }
    }

    fn led_filter(&mut self, left: Node) -> Result<Node, QueryError> {
        let condition = self.expression(0)?;
        self.expect(Tok::RBracket)?;
        let right = if *self.current() == Tok::Flatten {
            Node::Identity
        } else {
            self.projection_rhs(Tok::Filter.binding_power())?
        };
        Ok(Node::FilterProjection(
            Box::new(left),
            Box::new(right),
            Box::new(condition),
        ))
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, QueryError> {
        let is_slice = matches!(right, Node::Slice(..));
        let index_expr = Node::Sub(Box::new(left), Box::new(right));
        if is_slice {
            let rhs = self.projection_rhs(Tok::Star.binding_power())?;
            Ok(Node::Projection(Box::new(index_expr), Box::new(rhs)))
        } else {
            Ok(index_expr)
        }
    }

    fn index_expression(&mut self) -> Result<Node, QueryError> {
        if *self.current() == Tok::Colon || self.token(1).tok == Tok::Colon {
            return self.slice_expression();
        }
        let n = match self.current() {
            Tok::Number(n) => *n,
            _ => 0,
        };
        self.advance();
        self.expect(Tok::RBracket)?;
        Ok(Node::Index(n))
    }

    fn slice_expression(&mut self) -> Result<Node, QueryError> {
        let mut parts: [Option<i64>; 3] = [None, None, None];
        let mut index = 0;
        while *self.current() != Tok::RBracket && index < 3 {
            match self.current().clone() {
                Tok::Colon => {
                    index += 1;
                    if index == 3 {
                        let t = self.token(0).clone();
                        return Err(self.parse_error(&t, "syntax error"));
                    }
                    self.advance();
                }
                Tok::Number(n) => {
                    parts[index] = Some(n);
                    self.advance();
                }
                _ => {
                    let t = self.token(0).clone();
                    return Err(self.parse_error(&t, "syntax error"));
                }
            }
        }
        self.expect(Tok::RBracket)?;
        let step = parts[2].unwrap_or(1);
        if step == 0 {
            return Err(QueryError::Unsupported {
                expression: self.expr.clone(),
                message: "Invalid slice expression: step cannot be 0".to_string(),
            });
        }
        Ok(Node::Slice(parts[0], parts[1], step))
    }

    fn projection_rhs(&mut self, rbp: u8) -> Result<Node, QueryError> {
        let cur = self.current().clone();
        if cur.binding_power() < PROJECTION_STOP {
            Ok(Node::Identity)
        } else if cur == Tok::LBracket || cur == Tok::Filter {
            self.expression(rbp)
        } else if cur == Tok::Dot {
            self.advance();
            self.dot_rhs(rbp)
        } else {
            let t = self.token(0).clone();
            Err(self.parse_error(&t, "syntax error"))
        }
    }

    fn dot_rhs(&mut self, rbp: u8) -> Result<Node, QueryError> {
        match self.current() {
            Tok::Ident(_) | Tok::Quoted(_) | Tok::Star => self.expression(rbp),
            Tok::LBracket => {
                self.advance();
                self.multi_select_list()
            }
            Tok::LBrace => {
                self.advance();
                self.multi_select_hash()
            }
            other => {
                let msg = format!(
                    "Expecting: ['quoted_identifier', 'unquoted_identifier', 'lbracket', 'lbrace'], got: {}",
                    other.type_name()
                );
                let t = self.token(0).clone();
                Err(self.parse_error(&t, &msg))
            }
        }
    }

    fn multi_select_list(&mut self) -> Result<Node, QueryError> {
        let mut items = Vec::new();
        loop {
            items.push(self.expression(0)?);
            if *self.current() == Tok::RBracket {
                break;
            }
            self.expect(Tok::Comma)?;
        }
        self.expect(Tok::RBracket)?;
        Ok(Node::MultiList(items))
    }

    fn multi_select_hash(&mut self) -> Result<Node, QueryError> {
        let mut pairs = Vec::new();
        loop {
            let key = match self.current() {
                Tok::Ident(k) | Tok::Quoted(k) => k.clone(),
                _ => return Err(self.expect_error("['quoted_identifier', 'unquoted_identifier']")),
            };
            self.advance();
            self.expect(Tok::Colon)?;
            let value = self.expression(0)?;
            pairs.push((key, value));
            match self.current() {
                Tok::Comma => self.advance(),
                Tok::RBrace => {
                    self.advance();
                    break;
                }
                _ => {}
            }
        }
        Ok(Node::MultiHash(pairs))
    }
}

/// JMESPath falsiness: null, false, "", [], {}.
fn is_false(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Python `==` on JSON values (numbers compare by value: 1 == 1.0).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn py_slice(list: &[Value], start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<Value> {
    let len = list.len() as i64;
    let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
    let clamp = |v: i64| {
        if v < 0 {
            (v + len).max(lower)
        } else {
            v.min(upper)
        }
    };
    let start = start.map_or(if step < 0 { upper } else { lower }, clamp);
    let stop = stop.map_or(if step < 0 { lower } else { upper }, clamp);
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(list[i as usize].clone());
        i += step;
    }
    out
}

fn project<'a>(items: impl Iterator<Item = &'a Value>, right: &Node) -> Value {
    Value::Array(
        items
            .map(|e| eval(right, e))
            .filter(|v| !v.is_null())
            .collect(),
    )
}

fn eval(node: &Node, value: &Value) -> Value {
    match node {
        Node::Identity => value.clone(),
        Node::Field(name) => value.get(name).cloned().unwrap_or(Value::Null),
        Node::Sub(left, right) => {
            let l = eval(left, value);
            if l.is_null() {
                Value::Null
            } else {
                eval(right, &l)
            }
        }
        Node::Index(i) => match value {
            Value::Array(list) => {
                let idx = if *i < 0 { list.len() as i64 + i } else { *i };
                if idx < 0 {
                    Value::Null
                } else {
                    list.get(idx as usize).cloned().unwrap_or(Value::Null)
                }
            }
            _ => Value::Null,
        },
        Node::Slice(start, stop, step) => match value {
            Value::Array(list) => Value::Array(py_slice(list, *start, *stop, *step)),
            _ => Value::Null,
        },
        Node::Projection(left, right) => match eval(left, value) {
            Value::Array(list) => project(list.iter(), right),
            _ => Value::Null,
        },
        Node::ValueProjection(left, right) => match eval(left, value) {
            Value::Object(map) => project(map.values(), right),
            _ => Value::Null,
        },
        Node::FilterProjection(left, right, cond) => match eval(left, value) {
            Value::Array(list) => project(list.iter().filter(|e| !is_false(&eval(cond, e))), right),
            _ => Value::Null,
        },
        Node::Flatten(inner) => match eval(inner, value) {
            Value::Array(list) => {
                let mut merged = Vec::new();
                for e in list {
                    match e {
                        Value::Array(sub) => merged.extend(sub),
                        other => merged.push(other),
                    }
                }
                Value::Array(merged)
            }
            _ => Value::Null,
        },
        Node::MultiList(items) => {
            if value.is_null() {
                Value::Null
            } else {
                Value::Array(items.iter().map(|n| eval(n, value)).collect())
            }
        }
        Node::MultiHash(pairs) => {
            if value.is_null() {
                Value::Null
            } else {
                Value::Object(
                    pairs
                        .iter()
                        .map(|(k, n)| (k.clone(), eval(n, value)))
                        .collect(),
                )
            }
        }
        Node::Literal(v) => v.clone(),
        Node::Pipe(left, right) => eval(right, &eval(left, value)),
        Node::Or(left, right) => {
            let l = eval(left, value);
            if is_false(&l) { eval(right, value) } else { l }
        }
        Node::And(left, right) => {
            let l = eval(left, value);
            if is_false(&l) { l } else { eval(right, value) }
        }
        Node::Not(inner) => Value::Bool(is_false(&eval(inner, value))),
        Node::Compare(op, left, right) => {
            let l = eval(left, value);
            let r = eval(right, value);
            match op {
                Cmp::Eq => Value::Bool(json_eq(&l, &r)),
                Cmp::Ne => Value::Bool(!json_eq(&l, &r)),
                _ => {
                    let ord = match (&l, &r) {
                        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                        _ => None,
                    };
                    match ord {
                        None => Value::Null,
                        Some(o) => Value::Bool(match op {
                            Cmp::Lt => o.is_lt(),
                            Cmp::Lte => o.is_le(),
                            Cmp::Gt => o.is_gt(),
                            _ => o.is_ge(),
                        }),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Argument readers
// ---------------------------------------------------------------------------

/// Python `os.path.expanduser` (for `~` and `~/...`) then
/// `os.path.expandvars` (`$NAME`, `${NAME}`; unknown names left as-is).
fn expand_path(path: &str) -> String {
    let mut p = path.to_string();
    if (p == "~" || p.starts_with("~/"))
        && let Ok(home) = std::env::var("HOME")
    {
        let home = home.trim_end_matches('/');
        p = format!("{home}{}", &p[1..]);
        if p.is_empty() {
            p = "/".to_string();
        }
    }
    let chars: Vec<char> = p.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            let (name, end) = if chars.get(i + 1) == Some(&'{') {
                match chars[i + 2..].iter().position(|c| *c == '}') {
                    Some(off) => (
                        chars[i + 2..i + 2 + off].iter().collect::<String>(),
                        i + 3 + off,
                    ),
                    None => (String::new(), i + 1),
                }
            } else {
                let mut j = i + 1;
                while j < chars.len() && is_word(chars[j]) {
                    j += 1;
                }
                (chars[i + 1..j].iter().collect::<String>(), j)
            };
            if end > i + 1 {
                if let Ok(val) = std::env::var(&name) {
                    out.push_str(&val);
                } else {
                    out.extend(&chars[i..end]);
                }
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Python's `str(OSError)`: `[Errno 2] No such file or directory: 'path'`.
fn py_os_error(err: &std::io::Error, path: &str) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            let suffix = format!(" (os error {code})");
            let text = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("[Errno {code}] {text}: {}", py_repr_str(path))
        }
        None => err.to_string(),
    }
}

/// Read a `file://` / `fileb://` paramfile: `(expanded path, bytes)`.
fn load_paramfile(arg: &str, prefix: &str) -> Result<(String, Vec<u8>), ArgError> {
    let path = expand_path(&arg[prefix.len()..]);
    std::fs::read(&path)
        .map(|bytes| (path.clone(), bytes))
        .map_err(|e| {
            ArgError::Param(ParamProblem::Unreadable {
                arg: arg.to_string(),
                reason: py_os_error(&e, &path),
            })
        })
}

/// Python text-mode read: UTF-8 decode plus universal newlines.
fn load_text_paramfile(arg: &str) -> Result<String, ArgError> {
    let (path, bytes) = load_paramfile(arg, "file://")?;
    let text =
        String::from_utf8(bytes).map_err(|_| ArgError::Param(ParamProblem::NotText { path }))?;
    // Python's text mode with UTF-8 keeps a BOM (only utf-8-sig strips it).
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Python `base64.b64decode(s)` (non-strict): characters outside the base64
/// alphabet are skipped, decoding stops at the first complete padding, and
/// the data length must be valid.
fn py_b64decode(s: &str) -> Result<Vec<u8>, String> {
    let mut data = String::new();
    let mut quad_pos = 0usize;
    let mut pads = 0usize;
    let mut complete = false;
    for c in s.chars() {
        if c == '=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    complete = true;
                    break;
                }
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c == '+' || c == '/') {
            continue;
        }
        pads = 0;
        data.push(c);
        quad_pos = (quad_pos + 1) % 4;
    }
    if !complete && quad_pos == 1 {
        return Err(format!(
            "Invalid base64-encoded string: number of data characters ({}) cannot be 1 more than a multiple of 4",
            data.len()
        ));
    }
    if !complete && quad_pos != 0 {
        return Err("Incorrect padding".to_string());
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(data.as_bytes()).map_err(|e| e.to_string())
}

/// Read a blob parameter (`--plaintext`, `--ciphertext-blob`, ...) as the
/// AWS CLI v2 does with the default `cli_binary_format=base64`:
/// `fileb://PATH` gives the file's bytes unchanged, `file://PATH` gives the
/// file's text base64-decoded, anything else is base64-decoded.
pub fn read_blob_arg(arg: &str) -> Result<Vec<u8>, ArgError> {
    if arg.starts_with("fileb://") {
        return Ok(load_paramfile(arg, "fileb://")?.1);
    }
    let text = if arg.starts_with("file://") {
        load_text_paramfile(arg)?
    } else {
        arg.to_string()
    };
    py_b64decode(&text).map_err(|reason| ArgError::InvalidBase64 {
        value: text.clone(),
        reason,
    })
}

/// Read a string parameter: `file://PATH` gives the file as text (UTF-8,
/// universal newlines, as Python's text mode), `fileb://PATH` gives the raw
/// bytes, which must be UTF-8, anything else is the literal value.
pub fn read_text_arg(arg: &str) -> Result<String, ArgError> {
    if arg.starts_with("fileb://") {
        let (path, bytes) = load_paramfile(arg, "fileb://")?;
        return String::from_utf8(bytes)
            .map_err(|_| ArgError::Param(ParamProblem::NotUtf8 { path }));
    }
    if arg.starts_with("file://") {
        return load_text_paramfile(arg);
    }
    Ok(arg.to_string())
}

fn looks_like_json(arg: &str) -> bool {
    let t = arg.trim();
    t.starts_with('{') || t.starts_with('[')
}

fn parse_json_arg(arg: &str) -> Result<Value, ArgError> {
    serde_json::from_str(arg).map_err(|e| {
        ArgError::Param(ParamProblem::InvalidJson {
            error: e.to_string(),
            json: arg.to_string(),
        })
    })
}

fn invalid_type(path: &str, value: &Value, valid: &str) -> String {
    format!(
        "Invalid type for parameter {path}, value: {}, type: {}, valid types: {valid}",
        py_repr(value),
        py_type(value)
    )
}

/// A parsed shorthand value: `k=v` or `k=v1,v2` (a csv list).
#[derive(Debug, Clone, PartialEq)]
enum ShValue {
    Str(String),
    List(Vec<String>),
}

impl ShValue {
    fn to_json(&self) -> Value {
        match self {
            ShValue::Str(s) => Value::String(s.clone()),
            ShValue::List(l) => Value::Array(l.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// The subset of the AWS CLI shorthand syntax (`awscli/shorthand.py`) that
/// string maps and flat structures need: `key=value,key2=value2`, values
/// optionally quoted, `\,` escaping a comma, `k=a,b` giving a list.
struct Shorthand {
    input: String,
    chars: Vec<char>,
    pos: usize,
}

impl Shorthand {
    fn new(input: &str) -> Self {
        Shorthand {
            input: input.to_string(),
            chars: input.chars().collect(),
            pos: 0,
        }
    }

    fn error_location(&self, index: usize) -> String {
        let consumed_chars: String = self.chars[..index.min(self.chars.len())].iter().collect();
        let num_spaces = match consumed_chars.rfind('\n') {
            Some(nl) => consumed_chars[nl + 1..].chars().count(),
            None => index,
        };
        let rest: String = self.chars[index.min(self.chars.len())..].iter().collect();
        let (consumed, remaining) = match rest.find('\n') {
            Some(nl) => (
                format!("{consumed_chars}{}", &rest[..nl]),
                rest[nl..].to_string(),
            ),
            None => (self.input.clone(), String::new()),
        };
        format!("{consumed}\n{}^{remaining}", spaces(num_spaces))
    }

    fn syntax_error(&self, expected: &str, actual: &str) -> ArgError {
        ArgError::Param(ParamProblem::Shorthand(format!(
            "Expected: '{expected}', received: '{actual}' for input:\n{}",
            self.error_location(self.pos)
        )))
    }

    fn eof(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ArgError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.syntax_error(&c.to_string(), "EOF")),
            Some(a) if a != c => Err(self.syntax_error(&c.to_string(), &a.to_string())),
            Some(_) => {
                self.pos += 1;
                self.skip_ws();
                Ok(())
            }
        }
    }

    fn is_key_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "-_.#/:".contains(c)
    }

    fn key(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(Self::is_key_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Does `key =` start at the current position?
    fn at_keyval(&self) -> bool {
        let mut i = self.pos;
        while self.chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while self.chars.get(i).is_some_and(|c| Self::is_key_char(*c)) {
            i += 1;
        }
        if i == key_start {
            return false;
        }
        while self.chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        self.chars.get(i) == Some(&'=')
    }

    fn parse(&mut self) -> Result<Vec<(String, ShValue)>, ArgError> {
        let mut params: Vec<(String, ShValue)> = Vec::new();
        self.skip_ws();
        let mut last_index = self.pos;
        loop {
            let key = self.key();
            self.expect('=')?;
            let value = self.values()?;
            if params.iter().any(|(k, _)| *k == key) {
                let loc = self.error_location(last_index + 1);
                return Err(ArgError::Param(ParamProblem::Shorthand(format!(
                    "Second instance of key \"{key}\" encountered for input:\n{loc}\nThis is often because there is a preceding \",\" instead of a space."
                ))));
            }
            params.push((key, value));
            last_index = self.pos;
            if self.eof() {
                break;
            }
            self.expect(',')?;
        }
        Ok(params)
    }

    fn values(&mut self) -> Result<ShValue, ArgError> {
        match self.peek() {
            None => Ok(ShValue::Str(String::new())),
            Some('[') | Some('{') => Err(ArgError::Param(ParamProblem::Shorthand(format!(
                "Nested shorthand lists and structures are not supported by kmsfs for input:\n{}",
                self.error_location(self.pos)
            )))),
            Some(_) => {
                let first = self.value()?;
                let mut list = vec![first];
                loop {
                    self.skip_ws();
                    if self.peek() != Some(',') {
                        break;
                    }
                    let comma = self.pos;
                    self.pos += 1;
                    if self.eof() || self.at_keyval() {
                        self.pos = comma;
                        break;
                    }
                    self.skip_ws();
                    match self.value() {
                        Ok(v) => list.push(v),
                        // Like awscli: backtrack to the comma and let the
                        // key=value parser report the problem.
                        Err(_) if !self.eof() => {
                            self.pos = comma;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if list.len() == 1 {
                    Ok(ShValue::Str(list.remove(0)))
                } else {
                    Ok(ShValue::List(list))
                }
            }
        }
    }

    fn quoted(&mut self, q: char) -> Result<String, ArgError> {
        let start = self.pos;
        let mut i = start + 1;
        let mut raw = String::new();
        loop {
            match self.chars.get(i) {
                None => {
                    self.pos = start;
                    let name = if q == '\'' {
                        "<single quoted>"
                    } else {
                        "<double quoted>"
                    };
                    return Err(self.syntax_error(name, "<none>"));
                }
                Some('\\') if matches!(self.chars.get(i + 1), Some(c) if *c == q || *c == '\\') => {
                    raw.push('\\');
                    raw.push(self.chars[i + 1]);
                    i += 2;
                }
                Some(c) if *c == q => break,
                Some(c) => {
                    raw.push(*c);
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        Ok(raw
            .replace(&format!("\\{q}"), &q.to_string())
            .replace("\\\\", "\\"))
    }

    fn value(&mut self) -> Result<String, ArgError> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => return self.quoted(q),
            None => return Err(self.syntax_error("<value>", "EOF")),
            _ => {}
        }
        let start_ok = |c: char| !c.is_whitespace() && !",=\"'[{".contains(c) && (c as u32) > 0x20;
        let follow_ok = |c: char| !",\"']}".contains(c) && (c.is_whitespace() || (c as u32) > 0x20);
        let mut out = String::new();
        let mut first = true;
        while let Some(c) = self.peek() {
            if c == '\\' && self.chars.get(self.pos + 1) == Some(&',') {
                out.push(',');
                self.pos += 2;
            } else if (first && start_ok(c)) || (!first && follow_ok(c)) {
                out.push(c);
                self.pos += 1;
            } else {
                break;
            }
            first = false;
        }
        if first {
            let actual = self
                .peek()
                .map(String::from)
                .unwrap_or_else(|| "EOF".into());
            return Err(self.syntax_error("<value>", &actual));
        }
        Ok(out)
    }
}

/// Parse a string-to-string map argument (`--encryption-context`): JSON
/// (`{"k":"v"}`) when the value starts with `{` or `[`, else shorthand
/// (`k1=v1,k2=v2`).
pub fn parse_string_map(arg: &str) -> Result<BTreeMap<String, String>, ArgError> {
    let mut out = BTreeMap::new();
    if looks_like_json(arg) {
        let v = parse_json_arg(arg)?;
        let Value::Object(map) = &v else {
            return Err(ArgError::Validation(vec![format!(
                "Invalid type for value: {}, type: {}, valid types: <class 'dict'>",
                py_repr(&v),
                py_type(&v)
            )]));
        };
        let mut errors = Vec::new();
        for (k, val) in map {
            match val {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                other => errors.push(invalid_type(k, other, "<class 'str'>")),
            }
        }
        if !errors.is_empty() {
            return Err(ArgError::Validation(errors));
        }
        return Ok(out);
    }
    let mut errors = Vec::new();
    for (k, v) in Shorthand::new(arg).parse()? {
        match v {
            ShValue::Str(s) => {
                out.insert(k, s);
            }
            list => errors.push(invalid_type(&k, &list.to_json(), "<class 'str'>")),
        }
    }
    if !errors.is_empty() {
        return Err(ArgError::Validation(errors));
    }
    Ok(out)
}

/// Validate one `Tag` structure (`{"TagKey": .., "TagValue": ..}`).
fn tag_from_object(
    map: &Map<String, Value>,
    index: usize,
    errors: &mut Vec<String>,
) -> Option<(String, String)> {
    let path = format!("Tags[{index}]");
    for k in map.keys() {
        if k != "TagKey" && k != "TagValue" {
            errors.push(format!(
                "Unknown parameter in {path}: \"{k}\", must be one of: TagKey, TagValue"
            ));
        }
    }
    let mut field = |name: &str| -> Option<String> {
        match map.get(name) {
            None => {
                errors.push(format!("Missing required parameter in {path}: \"{name}\""));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(invalid_type(
                    &format!("{path}.{name}"),
                    other,
                    "<class 'str'>",
                ));
                None
            }
        }
    };
    let key = field("TagKey");
    let value = field("TagValue");
    Some((key?, value?))
}

/// Parse `--tags`: one JSON list (`[{"TagKey":"k","TagValue":"v"}]`), or one
/// or more items, each either shorthand (`TagKey=k,TagValue=v`) or a JSON
/// object.
pub fn parse_tags(args: &[String]) -> Result<Vec<(String, String)>, ArgError> {
    if args.is_empty() {
        return Err(ArgError::NoValues);
    }
    let mut items: Vec<Value> = Vec::new();
    if args.len() == 1 && args[0].trim_start().starts_with('[') {
        match parse_json_arg(&args[0])? {
            Value::Array(list) => items = list,
            other => {
                return Err(ArgError::Validation(vec![invalid_type(
                    "Tags",
                    &other,
                    "<class 'list'>, <class 'tuple'>",
                )]));
            }
        }
    } else {
        for arg in args {
            if looks_like_json(arg) {
                items.push(parse_json_arg(arg)?);
            } else {
                let mut map = Map::new();
                for (k, v) in Shorthand::new(arg).parse()? {
                    map.insert(k, v.to_json());
                }
                items.push(Value::Object(map));
            }
        }
    }
    let mut errors = Vec::new();
    let mut tags = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Object(map) => {
                if let Some(tag) = tag_from_object(map, i, &mut errors) {
                    tags.push(tag);
                }
            }
            other => errors.push(invalid_type(&format!("Tags[{i}]"), other, "<class 'dict'>")),
        }
    }
    if !errors.is_empty() {
        return Err(ArgError::Validation(errors));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh file in the temp dir holding `contents`; returns its path.
    fn temp_file(contents: &[u8]) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("kmsfs-awscli-test-{}-{n}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // --- OutputFormat -----------------------------------------------------

    #[test]
    fn output_format_from_str() {
        assert_eq!("json".parse::<OutputFormat>(), Ok(OutputFormat::Json));
        assert_eq!("text".parse::<OutputFormat>(), Ok(OutputFormat::Text));
        assert_eq!(OutputFormat::default(), OutputFormat::Json);
        assert_eq!(OutputFormat::Text.to_string(), "text");
        for bad in ["table", "yaml", "JSON", ""] {
            let err = bad.parse::<OutputFormat>().unwrap_err();
            assert_eq!(err, ArgError::InvalidOutputFormat(bad.to_string()));
            assert!(
                err.to_string()
                    .starts_with("argument --output: Invalid choice")
            );
        }
    }

    // --- render (expected strings generated with Python json.dumps(indent=4,
    // ensure_ascii=False) and a verbatim copy of awscli/text.py) ------------

    #[test]
    fn render_scalar() {
        let doc: Value = serde_json::from_str("\"AQICAHg=\"").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "\"AQICAHg=\"\n");
        assert_eq!(render(&doc, OutputFormat::Text), "AQICAHg=\n");
    }

    #[test]
    fn render_null() {
        let doc: Value = serde_json::from_str("null").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "null\n");
        assert_eq!(render(&doc, OutputFormat::Text), "None\n");
    }

    #[test]
    fn render_bool() {
        let doc: Value = serde_json::from_str("true").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "true\n");
        assert_eq!(render(&doc, OutputFormat::Text), "True\n");
    }

    #[test]
    fn render_num() {
        let doc: Value = serde_json::from_str("42").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "42\n");
        assert_eq!(render(&doc, OutputFormat::Text), "42\n");
    }

    #[test]
    fn render_float() {
        let doc: Value = serde_json::from_str("1.5").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "1.5\n");
        assert_eq!(render(&doc, OutputFormat::Text), "1.5\n");
    }

    #[test]
    fn render_scalar_list() {
        let doc: Value = serde_json::from_str("[\"a\", \"b\", 3, null, false]").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "[\n    \"a\",\n    \"b\",\n    3,\n    null,\n    false\n]\n"
        );
        assert_eq!(render(&doc, OutputFormat::Text), "a\tb\t3\tNone\tFalse\n");
    }

    #[test]
    fn render_flat() {
        let doc: Value = serde_json::from_str("{\"KeyId\": \"k1\", \"Enabled\": true, \"CreationDate\": 1700000000.123, \"Arn\": \"arn:x\", \"Count\": 3, \"Desc\": null}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"KeyId\": \"k1\",\n    \"Enabled\": true,\n    \"CreationDate\": 1700000000.123,\n    \"Arn\": \"arn:x\",\n    \"Count\": 3,\n    \"Desc\": null\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "arn:x\t3\t1700000000.123\tNone\tTrue\tk1\n"
        );
    }

    #[test]
    fn render_list_keys() {
        let doc: Value =
            serde_json::from_str("{\"Keys\": [{\"KeyId\": \"a\", \"KeyArn\": \"b\"}]}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"Keys\": [\n        {\n            \"KeyId\": \"a\",\n            \"KeyArn\": \"b\"\n        }\n    ]\n}\n"
        );
        assert_eq!(render(&doc, OutputFormat::Text), "KEYS\tb\ta\n");
    }

    #[test]
    fn render_list_keys_full() {
        let doc: Value = serde_json::from_str("{\"Keys\": [{\"KeyId\": \"1234\", \"KeyArn\": \"arn:aws:kms:us-east-1:111122223333:key/1234\"}, {\"KeyId\": \"5678\", \"KeyArn\": \"arn:aws:kms:us-east-1:111122223333:key/5678\"}], \"Truncated\": false}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"Keys\": [\n        {\n            \"KeyId\": \"1234\",\n            \"KeyArn\": \"arn:aws:kms:us-east-1:111122223333:key/1234\"\n        },\n        {\n            \"KeyId\": \"5678\",\n            \"KeyArn\": \"arn:aws:kms:us-east-1:111122223333:key/5678\"\n        }\n    ],\n    \"Truncated\": false\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "False\nKEYS\tarn:aws:kms:us-east-1:111122223333:key/1234\t1234\nKEYS\tarn:aws:kms:us-east-1:111122223333:key/5678\t5678\n"
        );
    }

    #[test]
    fn render_describe_key() {
        let doc: Value = serde_json::from_str("{\"KeyMetadata\": {\"AWSAccountId\": \"111122223333\", \"KeyId\": \"1234\", \"Arn\": \"arn:aws:kms:us-east-1:111122223333:key/1234\", \"CreationDate\": 1700000000.0, \"Enabled\": true, \"Description\": \"\", \"KeyUsage\": \"ENCRYPT_DECRYPT\", \"KeyState\": \"Enabled\", \"EncryptionAlgorithms\": [\"SYMMETRIC_DEFAULT\"], \"MultiRegion\": false, \"MultiRegionConfiguration\": {\"MultiRegionKeyType\": \"PRIMARY\", \"ReplicaKeys\": []}}}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"KeyMetadata\": {\n        \"AWSAccountId\": \"111122223333\",\n        \"KeyId\": \"1234\",\n        \"Arn\": \"arn:aws:kms:us-east-1:111122223333:key/1234\",\n        \"CreationDate\": 1700000000.0,\n        \"Enabled\": true,\n        \"Description\": \"\",\n        \"KeyUsage\": \"ENCRYPT_DECRYPT\",\n        \"KeyState\": \"Enabled\",\n        \"EncryptionAlgorithms\": [\n            \"SYMMETRIC_DEFAULT\"\n        ],\n        \"MultiRegion\": false,\n        \"MultiRegionConfiguration\": {\n            \"MultiRegionKeyType\": \"PRIMARY\",\n            \"ReplicaKeys\": []\n        }\n    }\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "KEYMETADATA\t111122223333\tarn:aws:kms:us-east-1:111122223333:key/1234\t1700000000.0\t\tTrue\t1234\tEnabled\tENCRYPT_DECRYPT\tFalse\nENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\nMULTIREGIONCONFIGURATION\tPRIMARY\n"
        );
    }

    #[test]
    fn render_aliases() {
        let doc: Value = serde_json::from_str("{\"Aliases\": [{\"AliasName\": \"alias/a\", \"AliasArn\": \"arn:a\", \"TargetKeyId\": \"k1\"}, {\"AliasName\": \"alias/aws/s3\", \"AliasArn\": \"arn:s3\"}]}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"Aliases\": [\n        {\n            \"AliasName\": \"alias/a\",\n            \"AliasArn\": \"arn:a\",\n            \"TargetKeyId\": \"k1\"\n        },\n        {\n            \"AliasName\": \"alias/aws/s3\",\n            \"AliasArn\": \"arn:s3\"\n        }\n    ]\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "ALIASES\tarn:a\talias/a\tk1\nALIASES\tarn:s3\talias/aws/s3\t\n"
        );
    }

    #[test]
    fn render_mixed_list() {
        let doc: Value = serde_json::from_str("[1, [2, 3], \"x\", [[\"y\"]]]").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "[\n    1,\n    [\n        2,\n        3\n    ],\n    \"x\",\n    [\n        [\n            \"y\"\n        ]\n    ]\n]\n"
        );
        assert_eq!(render(&doc, OutputFormat::Text), "1\tx\n2\t3\ny\n");
    }

    #[test]
    fn render_nested_lists() {
        let doc: Value = serde_json::from_str("{\"Grants\": [[\"a\", \"b\"], \"c\"]}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"Grants\": [\n        [\n            \"a\",\n            \"b\"\n        ],\n        \"c\"\n    ]\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "GRANTS\tc\nGRANTS\ta\nGRANTS\tb\n"
        );
    }

    #[test]
    fn render_ragged() {
        let doc: Value = serde_json::from_str("{\"Items\": [{\"A\": 1, \"L\": [1, 2]}, {\"A\": 2, \"B\": \"x\", \"L\": {\"Q\": 1}}, {\"B\": [1]}]}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"Items\": [\n        {\n            \"A\": 1,\n            \"L\": [\n                1,\n                2\n            ]\n        },\n        {\n            \"A\": 2,\n            \"B\": \"x\",\n            \"L\": {\n                \"Q\": 1\n            }\n        },\n        {\n            \"B\": [\n                1\n            ]\n        }\n    ]\n}\n"
        );
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "ITEMS\t1\t\nL\t1\nL\t2\nITEMS\t2\tx\nL\t1\nITEMS\t\t[1]\n"
        );
    }

    #[test]
    fn render_empty() {
        let doc: Value = serde_json::from_str("{}").unwrap();
        assert_eq!(render(&doc, OutputFormat::Json), "{}\n");
        assert_eq!(render(&doc, OutputFormat::Text), "");
    }

    #[test]
    fn render_empty_nested() {
        let doc: Value =
            serde_json::from_str("{\"A\": {}, \"B\": [], \"C\": {\"D\": []}}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"A\": {},\n    \"B\": [],\n    \"C\": {\n        \"D\": []\n    }\n}\n"
        );
        assert_eq!(render(&doc, OutputFormat::Text), "");
    }

    #[test]
    fn render_json_nested() {
        let doc: Value = serde_json::from_str("{\"a\": [1, 2.5, 1e+20, 1e-07, 0.1, 1e+16, 1000000000000000.0, -0.0, {}, [], [[]], {\"b\": {\"c\": null}}], \"é\": \"ü ✓ \u{2028} \u{7f} \\u0001 \\\"q\\\" \\\\ \\n\\t\", \"n\": -12345678901234, \"t\": true, \"f\": false}").unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Json),
            "{\n    \"a\": [\n        1,\n        2.5,\n        1e+20,\n        1e-07,\n        0.1,\n        1e+16,\n        1000000000000000.0,\n        -0.0,\n        {},\n        [],\n        [\n            []\n        ],\n        {\n            \"b\": {\n                \"c\": null\n            }\n        }\n    ],\n    \"é\": \"ü ✓ \u{2028} \u{7f} \\u0001 \\\"q\\\" \\\\ \\n\\t\",\n    \"n\": -12345678901234,\n    \"t\": true,\n    \"f\": false\n}\n"
        );
        // awscli/text.py raises AttributeError on this document (list mixing dicts and scalars)
    }

    #[test]
    fn py_float_repr() {
        let cases = [
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (100.0, "100.0"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float(f), want, "{f}");
        }
    }

    #[test]
    fn py_repr_values() {
        let v: Value =
            serde_json::from_str(r#"["a", "it's", 1, null, true, {"k": [2.0]}]"#).unwrap();
        assert_eq!(py_repr(&v), r#"['a', "it's", 1, None, True, {'k': [2.0]}]"#);
        assert_eq!(py_repr_str("a'b\"c\n"), r#"'a\'b"c\n'"#);
    }

    #[test]
    fn render_text_list_key_scalar_in_one_dict_list_in_another() {
        // text.py prints str() of the list in the scalar column.
        let doc: Value =
            serde_json::from_str(r#"{"Items": [{"A": "x"}, {"A": ["y", 1]}]}"#).unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "ITEMS\tx\nITEMS\t['y', 1]\n"
        );
    }

    // --- apply_query (expected values generated with jmespath.py 1.1.0) ----

    const QUERY_DOC: &str = "{\"CiphertextBlob\": \"AQID\", \"KeyMetadata\": {\"KeyId\": \"k1\", \"Arn\": \"arn:k1\", \"Enabled\": true, \"Tags\": {\"a b\": 1}}, \"Keys\": [{\"KeyId\": \"k1\", \"KeyArn\": \"arn:k1\"}, {\"KeyId\": \"k2\", \"KeyArn\": \"arn:k2\"}, {\"KeyArn\": \"arn:k3\"}], \"Aliases\": [{\"AliasName\": \"alias/a\", \"TargetKeyId\": \"k1\"}, {\"AliasName\": \"alias/aws/s3\"}, {\"AliasName\": \"alias/b\", \"TargetKeyId\": \"k2\"}], \"Nums\": [3, 1.0, 5, 2], \"Nested\": [[1, 2], [3, [4]], 5], \"Truncated\": false, \"KeyId\": \"top\", \"Arn\": \"arn:top\"}";
    const QUERY_CASES: &[(&str, &str)] = &[
        ("CiphertextBlob", "\"AQID\""),
        ("KeyMetadata.KeyId", "\"k1\""),
        ("KeyMetadata.Missing", "null"),
        ("Missing.KeyId", "null"),
        ("Keys[0]", "{\"KeyId\": \"k1\", \"KeyArn\": \"arn:k1\"}"),
        ("Keys[0].KeyId", "\"k1\""),
        ("Keys[-1].KeyArn", "\"arn:k3\""),
        ("Keys[9]", "null"),
        ("Keys[].KeyId", "[\"k1\", \"k2\"]"),
        ("Keys[*].KeyId", "[\"k1\", \"k2\"]"),
        (
            "Aliases[].AliasName",
            "[\"alias/a\", \"alias/aws/s3\", \"alias/b\"]",
        ),
        ("Aliases[].TargetKeyId", "[\"k1\", \"k2\"]"),
        ("[KeyId, Arn]", "[\"top\", \"arn:top\"]"),
        ("Missing.[KeyId, Arn]", "null"),
        (
            "Keys[].[KeyId, KeyArn]",
            "[[\"k1\", \"arn:k1\"], [\"k2\", \"arn:k2\"], [null, \"arn:k3\"]]",
        ),
        (
            "{Id: KeyId, A: Arn}",
            "{\"Id\": \"top\", \"A\": \"arn:top\"}",
        ),
        (
            "Keys[].{Id: KeyId}",
            "[{\"Id\": \"k1\"}, {\"Id\": \"k2\"}, {\"Id\": null}]",
        ),
        ("KeyMetadata.\"Tags\".\"a b\"", "1"),
        ("KeyMetadata.*", "[\"k1\", \"arn:k1\", true, {\"a b\": 1}]"),
        ("Nums[1:3]", "[1.0, 5]"),
        ("Nums[::-1]", "[2, 5, 1.0, 3]"),
        ("Nums[-2:]", "[5, 2]"),
        ("Keys[:2].KeyId", "[\"k1\", \"k2\"]"),
        ("Nested[]", "[1, 2, 3, [4], 5]"),
        ("Nested[][]", "[1, 2, 3, 4, 5]"),
        ("Aliases[?AliasName=='alias/b'].TargetKeyId", "[\"k2\"]"),
        (
            "Aliases[?TargetKeyId].AliasName",
            "[\"alias/a\", \"alias/b\"]",
        ),
        ("Aliases[?!TargetKeyId].AliasName", "[\"alias/aws/s3\"]"),
        ("Nums[?@ > `2`]", "[3, 5]"),
        ("Nums[?@ == `1`]", "[1.0]"),
        (
            "Aliases[?AliasName != 'alias/a' && TargetKeyId].AliasName",
            "[\"alias/b\"]",
        ),
        ("Keys[].KeyId | [0]", "\"k1\""),
        ("Keys | [1].KeyId", "\"k2\""),
        ("Truncated || KeyId", "\"top\""),
        ("Truncated && KeyId", "false"),
        ("`{\"a\": [1]}`", "{\"a\": [1]}"),
        ("'raw'", "\"raw\""),
        ("@.KeyId", "\"top\""),
        ("Keys[0].KeyId.Missing", "null"),
        ("CiphertextBlob[0]", "null"),
        ("Keys.KeyId", "null"),
        ("(KeyId)", "\"top\""),
        ("KeyMetadata.[KeyId, Enabled]", "[\"k1\", true]"),
        (
            "Aliases[?TargetKeyId == `null`].AliasName",
            "[\"alias/aws/s3\"]",
        ),
        (
            "Aliases[?AliasName > 'alias/a'].AliasName",
            "[\"alias/aws/s3\", \"alias/b\"]",
        ),
        ("*.KeyId", "[\"k1\"]"),
        (
            "Keys[*]",
            "[{\"KeyId\": \"k1\", \"KeyArn\": \"arn:k1\"}, {\"KeyId\": \"k2\", \"KeyArn\": \"arn:k2\"}, {\"KeyArn\": \"arn:k3\"}]",
        ),
        ("Keys[?KeyId=='k2'] | [0].KeyArn", "\"arn:k2\""),
    ];
    const QUERY_ERRORS: &[(&str, &str)] = &[
        (
            "Keys[",
            "Bad value for --query Keys[: Invalid jmespath expression: Incomplete expression:\n\"Keys[\"\n      ^",
        ),
        (
            "Keys.",
            "Bad value for --query Keys.: Expecting: ['quoted_identifier', 'unquoted_identifier', 'lbracket', 'lbrace'], got: eof: Parse error at column 5, token \"\" (EOF), for expression:\n\"Keys.\"\n      ^",
        ),
        (
            "][",
            "Bad value for --query ][: invalid token: Parse error at column 0, token \"]\" (RBRACKET), for expression:\n\"][\"\n ^",
        ),
        (
            "'abc",
            "Bad value for --query 'abc: Bad jmespath expression: Unclosed ' delimiter:\n'abc\n^",
        ),
        (
            "a b",
            "Bad value for --query a b: Unexpected token: b: Parse error at column 2, token \"b\" (UNQUOTED_IDENTIFIER), for expression:\n\"a b\"\n   ^",
        ),
        (
            "a..b",
            "Bad value for --query a..b: Expecting: ['quoted_identifier', 'unquoted_identifier', 'lbracket', 'lbrace'], got: dot: Parse error at column 2, token \".\" (DOT), for expression:\n\"a..b\"\n   ^",
        ),
        (
            "Keys[-]",
            "Bad value for --query Keys[-]: Bad jmespath expression: Unknown token '-':\nKeys[-]\n     ^",
        ),
        (
            "a[b]",
            "Bad value for --query a[b]: Expecting: star, got: unquoted_identifier: Parse error at column 2, token \"b\" (UNQUOTED_IDENTIFIER), for expression:\n\"a[b]\"\n   ^",
        ),
        (
            "{a b}",
            "Bad value for --query {a b}: Expecting: colon, got: unquoted_identifier: Parse error at column 3, token \"b\" (UNQUOTED_IDENTIFIER), for expression:\n\"{a b}\"\n    ^",
        ),
        (
            "[a,",
            "Bad value for --query [a,: Invalid jmespath expression: Incomplete expression:\n\"[a,\"\n    ^",
        ),
        (
            "a.\"b",
            "Bad value for --query a.\"b: Bad jmespath expression: Unclosed \" delimiter:\na.\"b\n  ^",
        ),
        (
            "a = b",
            "Bad value for --query a = b: Bad jmespath expression: Unknown token '=':\na = b\n  ^",
        ),
        (
            "Keys[1:2:3:4]",
            "Bad value for --query Keys[1:2:3:4]: syntax error: Parse error at column 10, token \":\" (COLON), for expression:\n\"Keys[1:2:3:4]\"\n           ^",
        ),
        (
            "a ~ b",
            "Bad value for --query a ~ b: Bad jmespath expression: Unknown token ~:\na ~ b\n  ^",
        ),
    ];

    #[test]
    fn query_cases_match_jmespath_py() {
        let doc: Value = serde_json::from_str(QUERY_DOC).unwrap();
        for (query, want) in QUERY_CASES {
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(apply_query(&doc, query).unwrap(), want, "query {query}");
        }
    }

    #[test]
    fn query_errors_match_jmespath_py() {
        for (query, want) in QUERY_ERRORS {
            let err = apply_query(&Value::Null, query).unwrap_err();
            assert_eq!(err.to_string(), *want, "query {query}");
            assert!(matches!(err, QueryError::Syntax { .. }));
        }
    }

    #[test]
    fn query_empty_and_unsupported() {
        assert_eq!(
            apply_query(&Value::Null, "").unwrap_err().to_string(),
            "Bad value for --query : Invalid JMESPath expression: cannot be empty."
        );
        for q in ["length(Keys)", "sort_by(Keys, &KeyId)", "Keys[::0]"] {
            let err = apply_query(&Value::Null, q).unwrap_err();
            assert!(matches!(err, QueryError::Unsupported { .. }), "{q}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("Bad value for --query {q}: "))
            );
        }
    }

    #[test]
    fn query_brief_forms() {
        let doc: Value = serde_json::from_str(
            r#"{"CiphertextBlob":"AQID","KeyMetadata":{"KeyId":"k"},
                "Keys":[{"KeyId":"a","KeyArn":"b"}],"Aliases":[{"AliasName":"alias/x"}],
                "KeyId":"top","Arn":"arn"}"#,
        )
        .unwrap();
        let q = |s: &str| apply_query(&doc, s).unwrap();
        assert_eq!(q("CiphertextBlob"), serde_json::json!("AQID"));
        assert_eq!(q("KeyMetadata.KeyId"), serde_json::json!("k"));
        assert_eq!(q("Keys[0]"), serde_json::json!({"KeyId":"a","KeyArn":"b"}));
        assert_eq!(q("Keys[].KeyId"), serde_json::json!(["a"]));
        assert_eq!(q("Aliases[].AliasName"), serde_json::json!(["alias/x"]));
        assert_eq!(q("[KeyId, Arn]"), serde_json::json!(["top", "arn"]));
        assert_eq!(q("Nope"), Value::Null);
        assert_eq!(q("KeyMetadata.Nope.Deeper"), Value::Null);
        // --output text of a projected query, as in `aws kms list-keys
        // --query Keys[].KeyId --output text`.
        assert_eq!(render(&q("Keys[].KeyId"), OutputFormat::Text), "a\n");
        assert_eq!(render(&q("Nope"), OutputFormat::Text), "None\n");
    }

    // --- read_blob_arg / read_text_arg ------------------------------------

    #[test]
    fn blob_literal_is_base64_decoded_like_python() {
        // Expected values from Python base64.b64decode (non-strict).
        assert_eq!(read_blob_arg("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVs bG8=\n").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVsbG8=garbage").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGV*sbG8=").unwrap(), b"hello");
        assert_eq!(read_blob_arg("aGVsbG9=").unwrap(), b"hello"); // trailing bits ignored
        assert_eq!(read_blob_arg("!!!").unwrap(), b"");
        assert_eq!(read_blob_arg("").unwrap(), b"");
        assert_eq!(read_blob_arg("AAECAw==").unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn blob_bad_base64() {
        let err = read_blob_arg("aGVsbG8").unwrap_err();
        assert_eq!(err.to_string(), "Invalid base64: \"aGVsbG8\"");
        assert_eq!(
            err,
            ArgError::InvalidBase64 {
                value: "aGVsbG8".into(),
                reason: "Incorrect padding".into()
            }
        );
        assert_eq!(err.with_param("--plaintext"), "Invalid base64: \"aGVsbG8\"");
        let err = read_blob_arg("ab=c").unwrap_err();
        assert!(
            matches!(err, ArgError::InvalidBase64 { ref reason, .. } if reason == "Incorrect padding")
        );
        match read_blob_arg("aGVsbG8xa").unwrap_err() {
            ArgError::InvalidBase64 { reason, .. } => assert_eq!(
                reason,
                "Invalid base64-encoded string: number of data characters (9) cannot be 1 more than a multiple of 4"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blob_fileb_is_raw_bytes() {
        let bytes = [0u8, 159, 146, 150, b'\r', b'\n', 255];
        let path = temp_file(&bytes);
        assert_eq!(read_blob_arg(&format!("fileb://{path}")).unwrap(), bytes);
    }

    #[test]
    fn blob_file_is_text_then_base64() {
        let path = temp_file(b"aGVs\r\nbG8=\n");
        assert_eq!(read_blob_arg(&format!("file://{path}")).unwrap(), b"hello");
        let path = temp_file(b"not base64\n");
        assert_eq!(
            read_blob_arg(&format!("file://{path}"))
                .unwrap_err()
                .to_string(),
            "Invalid base64: \"not base64\n\""
        );
    }

    #[test]
    fn missing_paramfile() {
        for prefix in ["file://", "fileb://"] {
            let arg = format!("{prefix}/nonexistent/kmsfs/x");
            let want = format!(
                "Error parsing parameter: Unable to load paramfile {arg}: [Errno 2] No such file or directory: '/nonexistent/kmsfs/x'"
            );
            let err = read_blob_arg(&arg).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(read_text_arg(&arg).unwrap_err().to_string(), want);
            assert_eq!(
                err.with_param("--ciphertext-blob"),
                want.replace("parameter:", "parameter '--ciphertext-blob':")
            );
        }
    }

    #[test]
    fn paramfile_is_directory() {
        let dir = std::env::temp_dir();
        let dir = dir.to_string_lossy();
        let err = read_text_arg(&format!("file://{dir}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "Error parsing parameter: Unable to load paramfile file://{dir}: [Errno 21] Is a directory: '{dir}'"
            )
        );
    }

    #[test]
    fn text_arg_forms() {
        assert_eq!(read_text_arg("plain value").unwrap(), "plain value");
        assert_eq!(read_text_arg("alias/my-key").unwrap(), "alias/my-key");
        let path = temp_file("déjà vu\r\nline2\rline3\n".as_bytes());
        assert_eq!(
            read_text_arg(&format!("file://{path}")).unwrap(),
            "déjà vu\nline2\nline3\n"
        );
        assert_eq!(
            read_text_arg(&format!("fileb://{path}")).unwrap(),
            "déjà vu\r\nline2\rline3\n"
        );
    }

    #[test]
    fn text_arg_binary_file() {
        let path = temp_file(&[0xff, 0xfe, 0x00]);
        assert_eq!(
            read_text_arg(&format!("file://{path}"))
                .unwrap_err()
                .to_string(),
            format!(
                "Error parsing parameter: Unable to load paramfile ({path}), text contents could not be decoded.  If this is a binary file, please use the fileb:// prefix instead of the file:// prefix."
            )
        );
        assert!(matches!(
            read_text_arg(&format!("fileb://{path}")).unwrap_err(),
            ArgError::Param(ParamProblem::NotUtf8 { .. })
        ));
    }

    #[test]
    fn paramfile_path_expansion() {
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            let home = home.trim_end_matches('/');
            assert_eq!(expand_path("~/x"), format!("{home}/x"));
            assert_eq!(expand_path("$HOME/x"), format!("{home}/x"));
            assert_eq!(expand_path("${HOME}/x"), format!("{home}/x"));
        }
        assert_eq!(expand_path("~other/x"), "~other/x");
        assert_eq!(
            expand_path("/a/$KMSFS_SURELY_UNSET_VAR/b$"),
            "/a/$KMSFS_SURELY_UNSET_VAR/b$"
        );
        assert_eq!(expand_path("/plain/path"), "/plain/path");
    }

    // --- parse_string_map ---------------------------------------------------

    #[test]
    fn string_map_json() {
        let m = parse_string_map(r#"{"purpose":"test","dept":"a=b,c"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["purpose"], "test");
        assert_eq!(m["dept"], "a=b,c");
        assert!(parse_string_map("  {}  ").unwrap().is_empty());
    }

    #[test]
    fn string_map_json_errors() {
        let err = parse_string_map(r#"{"a": 1}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Parameter validation failed:\nInvalid type for parameter a, value: 1, type: <class 'int'>, valid types: <class 'str'>"
        );
        let err = parse_string_map(r#"["a"]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Parameter validation failed:\nInvalid type for value: ['a'], type: <class 'list'>, valid types: <class 'dict'>"
        );
        let err = parse_string_map(r#"{"a": "#).unwrap_err();
        match &err {
            ArgError::Param(ParamProblem::InvalidJson { json, .. }) => {
                assert_eq!(json, r#"{"a": "#)
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("Error parsing parameter: Invalid JSON: ")
        );
        assert!(err.to_string().ends_with("\nJSON received: {\"a\": "));
    }

    #[test]
    fn string_map_shorthand() {
        let m = parse_string_map("k1=v1,k2=v2").unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![("k1".into(), "v1".into()), ("k2".into(), "v2".into())]
        );
        let m = parse_string_map("k1 = v1 , aws:s3:arn=arn:aws:s3:::b/k").unwrap();
        assert_eq!(m["k1"], "v1 ");
        assert_eq!(m["aws:s3:arn"], "arn:aws:s3:::b/k");
        let m = parse_string_map(r#"a='x, y',b="q\"uote",c=with\,comma,d=it=s"#).unwrap();
        assert_eq!(m["a"], "x, y");
        assert_eq!(m["b"], "q\"uote");
        assert_eq!(m["c"], "with,comma");
        assert_eq!(m["d"], "it=s");
        assert_eq!(parse_string_map("k=").unwrap()["k"], "");
    }

    #[test]
    fn string_map_shorthand_errors() {
        assert_eq!(
            parse_string_map("foo").unwrap_err().to_string(),
            "Error parsing parameter: Expected: '=', received: 'EOF' for input:\nfoo\n   ^"
        );
        assert_eq!(
            parse_string_map("a=b,,c=d")
                .unwrap_err()
                .with_param("--encryption-context"),
            "Error parsing parameter '--encryption-context': Expected: '=', received: ',' for input:\na=b,,c=d\n    ^"
        );
        assert_eq!(
            parse_string_map("a=b,c d").unwrap_err().to_string(),
            "Parameter validation failed:\nInvalid type for parameter a, value: ['b', 'c d'], type: <class 'list'>, valid types: <class 'str'>"
        );
        assert_eq!(
            parse_string_map("a=b,a=c").unwrap_err().to_string(),
            "Error parsing parameter: Second instance of key \"a\" encountered for input:\na=b,a=c\n    ^\nThis is often because there is a preceding \",\" instead of a space."
        );
        assert_eq!(
            parse_string_map("a=b,c").unwrap_err().to_string(),
            "Parameter validation failed:\nInvalid type for parameter a, value: ['b', 'c'], type: <class 'list'>, valid types: <class 'str'>"
        );
        assert!(matches!(
            parse_string_map("a='open").unwrap_err(),
            ArgError::Param(ParamProblem::Shorthand(_))
        ));
        assert!(matches!(
            parse_string_map("a=[x]").unwrap_err(),
            ArgError::Param(ParamProblem::Shorthand(_))
        ));
    }

    // --- parse_tags -----------------------------------------------------------

    #[test]
    fn tags_json_list() {
        let tags = parse_tags(&strings(&[
            r#"[{"TagKey":"k","TagValue":"v"},{"TagKey":"Env","TagValue":""}]"#,
        ]))
        .unwrap();
        assert_eq!(
            tags,
            vec![("k".into(), "v".into()), ("Env".into(), "".into())]
        );
    }

    #[test]
    fn tags_shorthand_and_json_objects() {
        let tags = parse_tags(&strings(&[
            "TagKey=k,TagValue=v",
            "TagValue=two words,TagKey=k2",
            r#"{"TagKey":"k3","TagValue":"v3"}"#,
        ]))
        .unwrap();
        assert_eq!(
            tags,
            vec![
                ("k".into(), "v".into()),
                ("k2".into(), "two words".into()),
                ("k3".into(), "v3".into())
            ]
        );
    }

    #[test]
    fn tags_errors() {
        assert_eq!(parse_tags(&[]).unwrap_err(), ArgError::NoValues);
        assert_eq!(
            parse_tags(&[]).unwrap_err().with_param("--tags"),
            "argument --tags: expected at least one argument"
        );
        assert_eq!(
            parse_tags(&strings(&["TagKey=k"])).unwrap_err().to_string(),
            "Parameter validation failed:\nMissing required parameter in Tags[0]: \"TagValue\""
        );
        assert_eq!(
            parse_tags(&strings(&["TagKey=k,TagValue=v", "Key=k,Value=v"]))
                .unwrap_err()
                .to_string(),
            "Parameter validation failed:\nUnknown parameter in Tags[1]: \"Key\", must be one of: TagKey, TagValue\nUnknown parameter in Tags[1]: \"Value\", must be one of: TagKey, TagValue\nMissing required parameter in Tags[1]: \"TagKey\"\nMissing required parameter in Tags[1]: \"TagValue\""
        );
        assert_eq!(
            parse_tags(&strings(&[r#"[{"TagKey":"k","TagValue":1}, "x"]"#]))
                .unwrap_err()
                .to_string(),
            "Parameter validation failed:\nInvalid type for parameter Tags[0].TagValue, value: 1, type: <class 'int'>, valid types: <class 'str'>\nInvalid type for parameter Tags[1], value: 'x', type: <class 'str'>, valid types: <class 'dict'>"
        );
        assert!(matches!(
            parse_tags(&strings(&["[{"])).unwrap_err(),
            ArgError::Param(ParamProblem::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_tags(&strings(&["TagKey"])).unwrap_err(),
            ArgError::Param(ParamProblem::Shorthand(_))
        ));
    }
}
