//! A tiny JSON value and writer (RFC 8259) for `--json`: keys keep their insertion order so files diff well, and
//! non-finite numbers become `null` (JSON has no NaN or infinity).

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Integers are kept apart from floats so counts print exactly.
    Int(i128),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object to `push` fields into.
    pub fn object() -> Json {
        Json::Obj(Vec::new())
    }

    /// Adds a field to an object (no-op on other values); returns `self` for chaining.
    pub fn field(mut self, key: &str, value: impl Into<Json>) -> Json {
        self.push(key, value);
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Obj(fields) = self {
            fields.push((key.to_string(), value.into()));
        }
    }

    /// Two-space indented text with a trailing newline.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Num(x) => write_number(out, *x),
            Json::Str(s) => write_string(out, s),
            Json::Arr(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                // Arrays of scalars stay on one line (percentile tables, per-second rates).
                let flat = items.iter().all(|i| !matches!(i, Json::Arr(_) | Json::Obj(_)));
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                        if flat {
                            out.push(' ');
                        }
                    }
                    if !flat {
                        newline(out, indent + 1);
                    }
                    item.write(out, indent + 1);
                }
                if !flat {
                    newline(out, indent);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                if fields.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (n, (k, v)) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 1);
                    write_string(out, k);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                }
                newline(out, indent);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    for _ in 0..indent {
        out.push_str("  ");
    }
}

fn write_number(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
    } else if x == x.trunc() && x.abs() < 1e15 {
        let _ = write!(out, "{}", x as i64);
    } else {
        // Shortest representation that round-trips (Rust's Display for f64).
        let _ = write!(out, "{x}");
    }
}

/// RFC 8259 §7: quote, backslash and control characters are escaped; everything else is UTF-8 as is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
impl From<f64> for Json {
    fn from(x: f64) -> Json {
        Json::Num(x)
    }
}
impl From<u64> for Json {
    fn from(x: u64) -> Json {
        Json::Int(x as i128)
    }
}
impl From<usize> for Json {
    fn from(x: usize) -> Json {
        Json::Int(x as i128)
    }
}
impl From<u32> for Json {
    fn from(x: u32) -> Json {
        Json::Int(x as i128)
    }
}
impl From<i64> for Json {
    fn from(x: i64) -> Json {
        Json::Int(x as i128)
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(o: Option<T>) -> Json {
        o.map_or(Json::Null, Into::into)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values_in_insertion_order() {
        let j = Json::object()
            .field("b", 2u64)
            .field("a", "x")
            .field("list", vec![1.5, 2.0])
            .field("nested", Json::object().field("ok", true).field("none", Json::Null))
            .field("empty", Json::Arr(vec![]));
        assert_eq!(
            j.to_pretty(),
            "{\n  \"b\": 2,\n  \"a\": \"x\",\n  \"list\": [1.5, 2],\n  \"nested\": {\n    \"ok\": true,\n    \
             \"none\": null\n  },\n  \"empty\": []\n}\n"
        );
    }

    #[test]
    fn escapes_strings_and_refuses_non_finite_numbers() {
        let j = Json::Arr(vec![
            Json::Str("q\"b\\n\n\u{1}é".into()),
            Json::Num(f64::NAN),
            Json::Num(f64::INFINITY),
            Json::Num(0.125),
            Json::Int(-3),
        ]);
        assert_eq!(j.to_pretty(), "[\"q\\\"b\\\\n\\n\\u0001é\", null, null, 0.125, -3]\n");
    }

    #[test]
    fn arrays_of_objects_are_indented() {
        let j = Json::Arr(vec![Json::object().field("p", 50.0), Json::object()]);
        assert_eq!(j.to_pretty(), "[\n  {\n    \"p\": 50\n  },\n  {}\n]\n");
    }
}
