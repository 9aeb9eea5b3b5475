//! `--output`: rendering a response document as the AWS CLI prints it.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::params::ArgError;
use super::python::{py_number, py_str};

/// `--output` format. Only `json` (the AWS default) and `text` are supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputFormat {
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
pub(crate) fn render(value: &Value, format: OutputFormat) -> String {
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

/// Python `json.dumps(value, indent=4, ensure_ascii=False)` of `value`, whose
/// first line starts at nesting depth `indent` (in spaces).
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

/// Anything but a list or an object.
fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

// --- text output: a port of awscli/text.py -------------------------------

/// `_format_text`: one value, under the identifier `ident` (the key that
/// holds it). `scalar_keys`, for an object inside a list of objects, are the
/// columns every row of that list prints, so that they line up.
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

/// `_format_list`: a list holding objects prints one row per element, with
/// the scalar keys of all its objects as columns; a list holding lists prints
/// its scalars on one row, then each nested value; else its scalars.
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

/// `_format_scalar_list`: one `IDENT\tvalue` line per element under an
/// identifier, else all elements on one tab-separated line.
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

/// `_format_dict`: the scalar values on one row (after the upper-cased
/// identifier, in `scalar_keys` order or sorted by key), then each nested
/// value, sorted by key, under its key.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn render_text_list_key_scalar_in_one_dict_list_in_another() {
        // text.py prints str() of the list in the scalar column.
        let doc: Value =
            serde_json::from_str(r#"{"Items": [{"A": "x"}, {"A": ["y", 1]}]}"#).unwrap();
        assert_eq!(
            render(&doc, OutputFormat::Text),
            "ITEMS\tx\nITEMS\t['y', 1]\n"
        );
    }
}
