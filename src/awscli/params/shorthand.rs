//! The AWS CLI shorthand syntax (`awscli/shorthand.py`), as far as string
//! maps and flat structures need it.

use serde_json::Value;

use super::{ArgError, ParamProblem};
use crate::awscli::python::spaces;

/// A parsed shorthand value: `k=v` or `k=v1,v2` (a csv list).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ShorthandValue {
    Str(String),
    List(Vec<String>),
}

impl ShorthandValue {
    pub(super) fn to_json(&self) -> Value {
        match self {
            ShorthandValue::Str(s) => Value::String(s.clone()),
            ShorthandValue::List(l) => Value::Array(l.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// The subset of the AWS CLI shorthand syntax (`awscli/shorthand.py`) that
/// string maps and flat structures need: `key=value,key2=value2`, values
/// optionally quoted, `\,` escaping a comma, `k=a,b` giving a list.
pub(super) struct Shorthand {
    input: String,
    chars: Vec<char>,
    pos: usize,
}

impl Shorthand {
    pub(super) fn new(input: &str) -> Self {
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

    pub(super) fn parse(&mut self) -> Result<Vec<(String, ShorthandValue)>, ArgError> {
        let mut params: Vec<(String, ShorthandValue)> = Vec::new();
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

    fn values(&mut self) -> Result<ShorthandValue, ArgError> {
        match self.peek() {
            None => Ok(ShorthandValue::Str(String::new())),
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
                    Ok(ShorthandValue::Str(list.remove(0)))
                } else {
                    Ok(ShorthandValue::List(list))
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
