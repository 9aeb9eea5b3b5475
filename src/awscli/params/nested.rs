//! The AWS CLI's shorthand for nested structures, as `aws ec2` takes them:
//! `ResourceType=volume,Tags=[{Key=a,Value=b},{Key=c,Value=d}]`,
//! `Name=status,Values=available,in-use`. Parsed into JSON (objects, lists,
//! strings), which the command then reads by its own shape, so that the
//! JSON form of the same parameter goes through the same code.
//!
//! Grammar (`awscli/shorthand.py`, minus the `@=` file-loading form):
//! ```text
//! struct := pair ("," pair)*          pair  := key "=" value
//! value  := "[" items? "]" | "{" struct? "}" | csv
//! items  := item ("," item)*          item  := "[" items? "]" | "{" struct? "}" | scalar
//! csv    := scalar ("," scalar)*      (a scalar followed by `key=` ends it)
//! scalar := 'quoted' | "quoted" | bare text up to , ] } (\ escapes)
//! ```

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Error parsing parameter '{param}': Expected: '{expected}', received: '{received}' for input:\n{input}"
)]
pub(crate) struct NestedError {
    pub param: String,
    pub expected: String,
    pub received: String,
    pub input: String,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    param: &'a str,
    input: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn fail<T>(&self, expected: &str) -> Result<T, NestedError> {
        Err(NestedError {
            param: self.param.to_owned(),
            expected: expected.to_owned(),
            received: self.peek().map_or_else(|| "EOF".to_owned(), String::from),
            input: self.input.to_owned(),
        })
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn key(&mut self) -> Result<String, NestedError> {
        self.skip_spaces();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || "_-.:/".contains(c))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return self.fail("key");
        }
        let key: String = self.chars[start..self.pos].iter().collect();
        self.skip_spaces();
        if !self.eat('=') {
            return self.fail("=");
        }
        Ok(key)
    }

    fn structure(&mut self, end: Option<char>) -> Result<Value, NestedError> {
        let mut map = Map::new();
        self.skip_spaces();
        if end.is_some() && self.peek() == end {
            return Ok(Value::Object(map));
        }
        loop {
            let key = self.key()?;
            let value = self.value()?;
            map.insert(key, value);
            self.skip_spaces();
            if !self.eat(',') {
                break;
            }
        }
        Ok(Value::Object(map))
    }

    fn value(&mut self) -> Result<Value, NestedError> {
        self.skip_spaces();
        match self.peek() {
            Some('[') => self.list(),
            Some('{') => self.object(),
            _ => {
                let first = self.scalar()?;
                let mut items = vec![Value::String(first)];
                // `Values=a,b`: more scalars until the next `key=`.
                while self.peek() == Some(',') && !self.next_is_pair() {
                    self.pos += 1;
                    items.push(Value::String(self.scalar()?));
                }
                Ok(if items.len() == 1 {
                    items.remove(0)
                } else {
                    Value::Array(items)
                })
            }
        }
    }

    /// Whether what follows the `,` at `pos` is `key=`.
    fn next_is_pair(&self) -> bool {
        let mut i = self.pos + 1;
        while self.chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let start = i;
        while self
            .chars
            .get(i)
            .is_some_and(|c| c.is_alphanumeric() || "_-.:/".contains(*c))
        {
            i += 1;
        }
        i > start && self.chars.get(i) == Some(&'=')
    }

    fn object(&mut self) -> Result<Value, NestedError> {
        self.eat('{');
        let v = self.structure(Some('}'))?;
        self.skip_spaces();
        if !self.eat('}') {
            return self.fail("}");
        }
        Ok(v)
    }

    fn list(&mut self) -> Result<Value, NestedError> {
        self.eat('[');
        let mut items = Vec::new();
        self.skip_spaces();
        if self.eat(']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_spaces();
            let item = match self.peek() {
                Some('{') => self.object()?,
                Some('[') => self.list()?,
                _ => Value::String(self.scalar()?),
            };
            items.push(item);
            self.skip_spaces();
            if self.eat(']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(',') {
                return self.fail(",");
            }
        }
    }

    fn scalar(&mut self) -> Result<String, NestedError> {
        self.skip_spaces();
        if let Some(q @ ('\'' | '"')) = self.peek() {
            self.pos += 1;
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => return self.fail(&q.to_string()),
                    Some('\\') if self.chars.get(self.pos + 1) == Some(&q) => {
                        out.push(q);
                        self.pos += 2;
                    }
                    Some(c) if c == q => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += 1;
                    }
                }
            }
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            match c {
                ',' | ']' | '}' => break,
                '\\' if self.chars.get(self.pos + 1).is_some() => {
                    out.push(self.chars[self.pos + 1]);
                    self.pos += 2;
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(out.trim_end().to_owned())
    }
}

/// Parses one structure argument of option `param` (`--filters`): JSON when
/// it starts with `{` or `[`, else shorthand.
pub(crate) fn parse_structure(param: &str, arg: &str) -> Result<Value, String> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str(arg).map_err(|e| {
            format!("Error parsing parameter '{param}': Invalid JSON: {e}\nJSON received: {arg}")
        });
    }
    let mut p = Parser {
        chars: arg.chars().collect(),
        pos: 0,
        param,
        input: arg,
    };
    let v = p.structure(None).map_err(|e| e.to_string())?;
    p.skip_spaces();
    if p.pos != p.chars.len() {
        return Err(p.fail::<()>("EOF").unwrap_err().to_string());
    }
    Ok(v)
}

/// Parses the arguments of a list-of-structures option (`--filters A B`
/// or `--filters '[{…},{…}]'`) into one JSON list.
pub(crate) fn parse_structure_list(param: &str, args: &[String]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for arg in args {
        match parse_structure(param, arg)? {
            Value::Array(items) => out.extend(items),
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ec2_shorthand_forms() {
        assert_eq!(
            parse_structure("--f", "Name=status,Values=available,in-use").unwrap(),
            json!({"Name": "status", "Values": ["available", "in-use"]})
        );
        assert_eq!(
            parse_structure(
                "--t",
                "ResourceType=volume,Tags=[{Key=Name,Value=data disk},{Key=team,Value='a,b'}]"
            )
            .unwrap(),
            json!({"ResourceType": "volume", "Tags": [
                {"Key": "Name", "Value": "data disk"}, {"Key": "team", "Value": "a,b"}]})
        );
        assert_eq!(
            parse_structure("--t", "Key=k,Value=").unwrap(),
            json!({"Key": "k", "Value": ""})
        );
        assert_eq!(
            parse_structure_list("--f", &["[{\"Name\":\"size\",\"Values\":[\"1\"]}]".into()])
                .unwrap(),
            vec![json!({"Name": "size", "Values": ["1"]})]
        );
    }

    #[test]
    fn malformed_shorthand_is_refused_with_the_position() {
        let e = parse_structure("--filters", "Name=status,Values=[a,b").unwrap_err();
        assert!(e.contains("--filters"), "{e}");
        assert!(parse_structure("--filters", "=x").is_err());
        assert!(parse_structure("--filters", "Name=a}").is_err());
    }
}
