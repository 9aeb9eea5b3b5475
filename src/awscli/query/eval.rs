//! Evaluating a JMESPath syntax tree against a document, following
//! `jmespath/visitor.py`.

use serde_json::Value;

use super::parser::{Cmp, Node};

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

/// Python `list[start:stop:step]` (`step` is never 0: the parser refuses it).
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

/// The elements' results of `right`, nulls dropped, as a projection gives.
fn project<'a>(items: impl Iterator<Item = &'a Value>, right: &Node) -> Value {
    Value::Array(
        items
            .map(|e| eval(right, e))
            .filter(|v| !v.is_null())
            .collect(),
    )
}

/// Evaluate `node` against `value` with `jmespath.py`'s semantics: missing
/// data and mismatched types give null, never an error.
pub(super) fn eval(node: &Node, value: &Value) -> Value {
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
