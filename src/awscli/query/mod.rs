//! `--query`: a JMESPath subset with the semantics and error messages of
//! `jmespath.py`, the implementation the AWS CLI uses.
//!
//! [`lexer`] turns the expression into tokens, [`parser`] (a Pratt parser
//! like `jmespath.py`'s) turns them into a syntax tree, and [`eval`] applies
//! that tree to a document.

mod eval;
mod lexer;
mod parser;

use serde_json::Value;

/// A `--query` expression that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    /// Syntax error; `message` follows the wording of `jmespath.py`.
    #[error("Bad value for --query {expression}: {message}")]
    Syntax { expression: String, message: String },
    /// Valid JMESPath that this subset does not implement (functions,
    /// expression references, zero slice step).
    #[error("Bad value for --query {expression}: {message}")]
    Unsupported { expression: String, message: String },
}

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
pub(crate) fn apply_query(value: &Value, query: &str) -> Result<Value, QueryError> {
    let node = parser::Parser::parse(query)?;
    Ok(eval::eval(&node, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::awscli::{OutputFormat, render};

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
}
