//! Following map keys and indexes inside one JSON value of an event.
//!
//! The scanner records where a wanted object or array starts, not what it
//! holds, so `labels["Recipient Account Id"]` or `security_result[0]` is
//! resolved here, on demand, by walking that one value of the line. The
//! line was already validated by the scanner; the walker still checks every
//! bound and gives up quietly on anything unexpected, so that no input can
//! make it panic. Nothing is built: strings are borrowed from the line
//! unless they hold escapes.

use std::borrow::Cow;

/// One step of a path below the point where the scanner stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `.name`: a member of an object; applied to every element of an array.
    Name(String),
    /// `["key"]`: a member of a map, or the `value` of the element of a
    /// label list (`[{"key": ..., "value": ...}]`) whose `key` matches.
    Key(String),
    /// `[i]`: an element of an array. A single value stands for a list of one.
    Index(i64),
}

/// Calls `f` with every value that `steps` reach from the JSON value at
/// byte `at` of `line`, until `f` returns `true`. Returns whether it did.
pub fn visit<'a>(
    line: &'a str,
    at: usize,
    steps: &[Step],
    f: &mut dyn FnMut(Cow<'a, str>) -> bool,
) -> bool {
    let b = line.as_bytes();
    let at = ws(b, at);
    let Some((step, rest)) = steps.split_first() else {
        return leaf(line, at, f);
    };
    match (step, b.get(at)) {
        (Step::Name(name), Some(b'{')) => {
            member(line, at, name).is_some_and(|v| visit(line, v, rest, f))
        }
        (Step::Name(_), Some(b'[')) => elements(b, at).any(|e| visit(line, e, steps, f)),
        (Step::Key(key), Some(b'{')) => {
            member(line, at, key).is_some_and(|v| visit(line, v, rest, f))
        }
        (Step::Key(key), Some(b'[')) => elements(b, at).any(|e| {
            let is_label = member(line, e, "key")
                .and_then(|k| string_at(line, ws(b, k)))
                .is_some_and(|(k, _)| k == key.as_str());
            is_label && member(line, e, "value").is_some_and(|v| visit(line, v, rest, f))
        }),
        (Step::Index(i), Some(b'[')) => {
            let i = usize::try_from(*i).ok();
            i.and_then(|i| elements(b, at).nth(i)).is_some_and(|e| visit(line, e, rest, f))
        }
        (Step::Index(0), Some(c)) if *c != b'n' => visit(line, at, rest, f),
        _ => false,
    }
}

/// How many captures the scanner records for the value at `at` when it
/// stands at a wanted path: one, and for an array one more per capture of
/// each element, since elements are taken as values of the same path.
pub fn capture_count(line: &str, at: usize) -> usize {
    let b = line.as_bytes();
    let at = ws(b, at);
    if b.get(at) == Some(&b'[') {
        1 + elements(b, at).map(|e| capture_count(line, e)).sum::<usize>()
    } else {
        1
    }
}

/// The values a path ends at: scalars as their text, each element of an
/// array, and the value inside a protobuf `Value` wrapper
/// (`{"stringValue": "x"}`), as `Struct` fields are sometimes written.
fn leaf<'a>(line: &'a str, at: usize, f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
    let b = line.as_bytes();
    match b.get(at) {
        Some(b'"') => string_at(line, at).is_some_and(|(s, _)| f(s)),
        Some(b'[') => elements(b, at).any(|e| leaf(line, ws(b, e), f)),
        Some(b'{') => {
            const WRAPPERS: [&str; 4] = ["stringValue", "numberValue", "boolValue", "listValue"];
            WRAPPERS.iter().find_map(|w| member(line, at, w)).is_some_and(|v| {
                let v = ws(b, v);
                // `listValue` holds `{"values": [...]}`.
                match member(line, v, "values") {
                    Some(list) => leaf(line, ws(b, list), f),
                    None => leaf(line, v, f),
                }
            })
        }
        Some(b'n') | None => false,
        Some(_) => {
            let end = scalar_end(b, at);
            line.get(at..end).is_some_and(|s| f(Cow::Borrowed(s)))
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

fn scalar_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The end of the string that starts at `at` (its opening quote), and
/// whether it holds escapes.
fn string_end(b: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut i = at + 1;
    let mut escaped = false;
    loop {
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// The string at `at`, unescaped, and the index after it.
fn string_at(line: &str, at: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = line.as_bytes();
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let (end, escaped) = string_end(b, at)?;
    let raw = line.get(at + 1..end - 1)?;
    if !escaped {
        return Some((Cow::Borrowed(raw), end));
    }
    Some((Cow::Owned(unescape(raw)), end))
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let c = match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let hi = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                if (0xD800..0xDC00).contains(&hi) {
                    let rest = chars.as_str();
                    let lo = rest
                        .strip_prefix("\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            chars = rest[6..].chars();
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                .unwrap_or('\u{FFFD}')
                        }
                        None => '\u{FFFD}',
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            Some(other) => other,
            None => break,
        };
        out.push(c);
    }
    out
}

/// The end of the value at `at`. Iterative, so that depth costs no stack.
fn value_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = ws(b, at);
    let mut depth = 0usize;
    loop {
        match b.get(i)? {
            b'"' => i = string_end(b, i)?.0,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => i = scalar_end(b, i).max(i + 1),
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// The start of the value of member `name` of the object at `at`; the
/// last one when a key repeats, as most JSON readers take it.
fn member(line: &str, at: usize, name: &str) -> Option<usize> {
    let b = line.as_bytes();
    let at = ws(b, at);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut i = ws(b, at + 1);
    let mut found = None;
    while b.get(i) == Some(&b'"') {
        let (key, after) = string_at(line, i)?;
        i = ws(b, after);
        if b.get(i) != Some(&b':') {
            return found;
        }
        let value = ws(b, i + 1);
        if key == name {
            found = Some(value);
        }
        i = ws(b, value_end(b, value)?);
        if b.get(i) != Some(&b',') {
            break;
        }
        i = ws(b, i + 1);
    }
    found
}

/// The start of each element of the array at `at`.
fn elements(b: &[u8], at: usize) -> impl Iterator<Item = usize> + '_ {
    let mut i = Some(ws(b, at + 1));
    if b.get(ws(b, at)) != Some(&b'[') || i.is_some_and(|i| b.get(i) == Some(&b']')) {
        i = None;
    }
    std::iter::from_fn(move || {
        let start = i?;
        let end = value_end(b, start).map(|e| ws(b, e));
        i = end.filter(|&e| b.get(e) == Some(&b',')).map(|e| ws(b, e + 1));
        Some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(line: &str, steps: &[Step]) -> Vec<String> {
        let mut out = Vec::new();
        visit(line, 0, steps, &mut |v| {
            out.push(v.into_owned());
            false
        });
        out
    }

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn keys_read_maps_and_label_lists() {
        let labels = r#"[{"key":"a","value":"1"},{"key":"b","value":"2"},{"key":"a","value":"3"}]"#;
        assert_eq!(all(labels, &[key("a")]), ["1", "3"]);
        assert_eq!(all(r#"{"a":"x","b":{"stringValue":"y"}}"#, &[key("b")]), ["y"]);
        assert_eq!(all(r#"{"a\"q":"x"}"#, &[key("a\"q")]), ["x"]);
        assert_eq!(all(r#"{"a":"x"}"#, &[key("z")]), Vec::<String>::new());
    }

    #[test]
    fn indexes_pick_elements_and_names_spread_over_arrays() {
        let results = r#"[{"severity":"LOW"},{"severity":"HIGH","x":[1,2]}]"#;
        let sev = Step::Name("severity".into());
        assert_eq!(all(results, &[Step::Index(1), sev.clone()]), ["HIGH"]);
        assert_eq!(all(results, &[sev]), ["LOW", "HIGH"]);
        assert_eq!(all(results, &[Step::Index(5)]), Vec::<String>::new());
        assert_eq!(all(r#""solo""#, &[Step::Index(0)]), ["solo"]);
        assert_eq!(all(r#"[1, 2.5 ,true]"#, &[]), ["1", "2.5", "true"]);
    }

    #[test]
    fn capture_counts_follow_the_scanner() {
        assert_eq!(capture_count(r#"[1,[2,3],{"a":[4]}]"#, 0), 6);
        assert_eq!(capture_count(r#"{"a":[1]}"#, 0), 1);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        for line in [r#"{"a":"#, r#"[{"key":"a","value""#, r#"{"a":"\u12"#, "[", "{", "\"\\"] {
            for steps in [vec![key("a")], vec![Step::Index(0)], vec![]] {
                let _ = all(line, &steps);
                let _ = capture_count(line, 0);
            }
        }
    }
}
