//! Argument values, read as the AWS CLI v2 reads them: [`paramfile`] for
//! `file://` / `fileb://` and blobs, [`shorthand`] for `key=value,...`, and
//! here the errors and the structured parameters (string maps, tags) that
//! accept either JSON or shorthand.

mod nested;
mod paramfile;
mod shorthand;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub(crate) use nested::{parse_structure, parse_structure_list};
pub(crate) use paramfile::{read_blob_arg, read_text_arg};
use shorthand::{Shorthand, ShorthandValue};

use super::python::{py_repr, py_type};

/// A problem with a command-line argument value.
///
/// Variants wrapped by the AWS CLI in its `ParamError` print as
/// `Error parsing parameter: ...`; use [`ArgError::with_param`] to get the
/// exact AWS wording including the option name
/// (`Error parsing parameter '--plaintext': ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArgError {
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
    pub(crate) fn with_param(&self, cli_name: &str) -> String {
        match self {
            ArgError::Param(p) => format!("Error parsing parameter '{cli_name}': {p}"),
            ArgError::NoValues => format!("argument {cli_name}: expected at least one argument"),
            other => other.to_string(),
        }
    }
}

/// The message part of an AWS CLI `ParamError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamProblem {
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

/// Parse a string-to-string map argument (`--encryption-context`): JSON
/// (`{"k":"v"}`) when the value starts with `{` or `[`, else shorthand
/// (`k1=v1,k2=v2`).
pub(crate) fn parse_string_map(arg: &str) -> Result<BTreeMap<String, String>, ArgError> {
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
            ShorthandValue::Str(s) => {
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
pub(crate) fn parse_tags(args: &[String]) -> Result<Vec<(String, String)>, ArgError> {
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

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
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
