//! The AWS CLI emulation behind `kmsfs kms ...` and `kmsfs iam ...`: those
//! commands read their arguments and print their results exactly as `aws kms`
//! and `aws iam` do, so scripts written against the AWS CLI run unchanged.
//!
//! * [`render`](mod@render): `--output json` (Python
//!   `json.dumps(indent=4, ensure_ascii=False)`) and `--output text`
//!   (`awscli/text.py`); the AWS CLI's `table` and `yaml` are not offered.
//! * [`query`]: `--query`, a JMESPath engine following `jmespath.py`, the
//!   implementation the AWS CLI uses.
//! * [`params`]: argument values, following the AWS CLI v2 rules for
//!   `file://` / `fileb://` paramfiles, blob base64 decoding, JSON and
//!   shorthand syntax.
//! * [`python`]: the Python `repr()` / `str()` conventions the three share.
//! * [`region`](mod@region): `--region`, the environment and the AWS config
//!   file, in the AWS CLI's order.
//!
//! Why our own: the AWS CLI is Python, and what it prints follows Python's
//! conventions. The maintained `jmespath` crate was tried for `--query`: it
//! sorts object keys (`{Id: KeyId, A: Arn}` comes out `{"A":...,"Id":...}`
//! where `jmespath.py` keeps the order written) and its error messages differ
//! from the AWS CLI's. Each engine here is a port of the Python module it
//! names, and its unit tests hold expectations generated with that module.
//!
//! Object key order is taken from the `serde_json::Map`, so serde_json must be
//! built with the `preserve_order` feature for JSON output to keep the order
//! of the documents it renders.
//!
//! This module tree is self-contained: it uses only `std`, `serde_json`,
//! `base64` and `thiserror`, nothing else of kmsfs.

mod params;
mod python;
mod query;
mod region;
mod render;

// The error types `ParamProblem` (inside `ArgError::Param`) and `QueryError`
// stay unexported: callers only display them.
pub(crate) use params::{
    ArgError, parse_string_map, parse_structure, parse_structure_list, parse_tags, read_blob_arg,
    read_text_arg,
};
pub(crate) use query::apply_query;
pub(crate) use region::resolve_region;
pub(crate) use render::{OutputFormat, render};
