//! The tag: what Tripline adds to an event that matched.
//!
//! A matching event gets one more top-level member, appended before its
//! closing brace; the rest of the event is left byte for byte as it was.
//! The format is specified in the README ("The tag"). It lives here, and
//! not in one of its users, because two of them must write the same bytes:
//! the `tripline` host, which gets its detections from a component, and the
//! Fluent Bit filter module, which runs the engine itself.
//!
//! The engine has no JSON writer, so this module escapes strings itself,
//! exactly as `serde_json` does; a test holds the two together.

use crate::compile::{MetaValue, Rule};
use crate::{Match, OutcomeValue};

/// The meta keys copied into every detection, besides the rule name.
pub const META_KEYS: [&str; 3] = ["severity", "mitre_attack_tactic", "mitre_attack_technique"];

/// A meta value, borrowed from wherever the rule description keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaRef<'a> {
    Text(&'a str),
    Integer(i64),
    Boolean(bool),
}

/// What the tagger reads of a rule. The engine's compiled rules provide it,
/// and so can a host's own description of a component's rules.
pub trait RuleHead {
    /// The name after the `rule` keyword.
    fn name(&self) -> &str;
    /// The value of the first `meta` entry named `key`, if there is one.
    fn meta(&self, key: &str) -> Option<MetaRef<'_>>;
    /// The placeholder names, in the order a detection lists their values.
    fn placeholders(&self) -> &[String];
    /// The outcome variable names, in the order a detection lists their
    /// values. A rule without outcomes gets no `outcomes` member.
    fn outcome_names(&self) -> &[String] {
        &[]
    }
}

/// An outcome value, borrowed from wherever the detection keeps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutcomeRef<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
    Bool(bool),
    Ints(&'a [i64]),
    Floats(&'a [f64]),
    Texts(&'a [String]),
}

/// What the tagger reads of one detection.
pub trait Hit {
    /// The index of the rule that matched, in the list given to
    /// [`Tagger::new`].
    fn rule(&self) -> u32;
    /// The values of the rule's placeholders, in order.
    fn variables(&self) -> &[Vec<String>];
    /// The value of the rule's outcome variable `i`.
    fn outcome(&self, i: usize) -> Option<OutcomeRef<'_>> {
        let _ = i;
        None
    }
}

impl RuleHead for Rule {
    fn name(&self) -> &str {
        &self.name
    }

    fn meta(&self, key: &str) -> Option<MetaRef<'_>> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, value)| match value {
            MetaValue::Text(t) => MetaRef::Text(t),
            MetaValue::Integer(i) => MetaRef::Integer(*i),
            MetaValue::Boolean(b) => MetaRef::Boolean(*b),
        })
    }

    fn placeholders(&self) -> &[String] {
        &self.placeholders
    }

    fn outcome_names(&self) -> &[String] {
        &self.outcome_names
    }
}

impl Hit for Match {
    fn rule(&self) -> u32 {
        self.rule
    }

    fn variables(&self) -> &[Vec<String>] {
        &self.variables
    }

    fn outcome(&self, i: usize) -> Option<OutcomeRef<'_>> {
        Some(match self.outcomes.get(i)? {
            OutcomeValue::Int(v) => OutcomeRef::Int(*v),
            OutcomeValue::Float(v) => OutcomeRef::Float(*v),
            OutcomeValue::Text(v) => OutcomeRef::Text(v),
            OutcomeValue::Bool(v) => OutcomeRef::Bool(*v),
            OutcomeValue::Ints(v) => OutcomeRef::Ints(v),
            OutcomeValue::Floats(v) => OutcomeRef::Floats(v),
            OutcomeValue::Texts(v) => OutcomeRef::Texts(v),
        })
    }
}

/// Renders detections for one set of loaded rules. Everything that depends
/// only on the rules is rendered once, here, so that tagging an event is
/// mostly copying.
#[derive(Clone, Debug)]
pub struct Tagger {
    /// `"name":[` with the field name escaped.
    open: Vec<u8>,
    /// Per rule: the detection object up to and including `"variables":`.
    prefixes: Vec<Vec<u8>>,
    /// Per rule: its placeholder names, as JSON strings.
    placeholders: Vec<Vec<Vec<u8>>>,
    /// Per rule: its outcome variable names, as JSON strings.
    outcomes: Vec<Vec<Vec<u8>>>,
}

impl Tagger {
    /// A tagger that puts detections in the top-level field `field`.
    pub fn new<R: RuleHead>(field: &str, rules: &[R]) -> Tagger {
        let mut open = Vec::new();
        push_string(&mut open, field);
        open.extend_from_slice(b":[");
        let prefixes = rules.iter().map(prefix).collect();
        let json_names = |names: &[String]| -> Vec<Vec<u8>> {
            names
                .iter()
                .map(|p| {
                    let mut out = Vec::new();
                    push_string(&mut out, p);
                    out
                })
                .collect()
        };
        let placeholders = rules.iter().map(|r| json_names(r.placeholders())).collect();
        let outcomes = rules.iter().map(|r| json_names(r.outcome_names())).collect();
        Tagger { open, prefixes, placeholders, outcomes }
    }

    /// Appends `line` with the tag for `hits` spliced in to `out`. `line` is
    /// a JSON object without its newline, as the engine confirmed when it
    /// found the hits. A hit that names a rule this tagger was not given is
    /// left out: a misbehaving component must not bring its host down.
    pub fn tag<H: Hit>(&self, line: &[u8], hits: &[H], out: &mut Vec<u8>) {
        let trimmed =
            line.len() - line.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
        let close = trimmed.checked_sub(1).filter(|&i| line[i] == b'}');
        let Some(close) = close else {
            // Not an object after all; never corrupt the event.
            out.extend_from_slice(line);
            return;
        };
        let before = &line[..close];
        let empty = before.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        out.extend_from_slice(before);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&self.open);
        let mut first = true;
        for hit in hits {
            let rule = hit.rule() as usize;
            let (Some(prefix), Some(names)) =
                (self.prefixes.get(rule), self.placeholders.get(rule))
            else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(prefix);
            variables(names, hit.variables(), out);
            if let Some(outcomes) = self.outcomes.get(rule).filter(|o| !o.is_empty()) {
                outcome_values(outcomes, hit, out);
            }
            out.push(b'}');
        }
        out.push(b']');
        out.extend_from_slice(&line[close..]);
    }
}

/// A rule's detection object up to and including `"variables":`.
fn prefix<R: RuleHead>(rule: &R) -> Vec<u8> {
    let mut out = b"{\"rule\":".to_vec();
    push_string(&mut out, rule.name());
    for key in META_KEYS {
        out.push(b',');
        push_string(&mut out, key);
        out.push(b':');
        match rule.meta(key) {
            None => out.extend_from_slice(b"null"),
            Some(MetaRef::Text(t)) => push_string(&mut out, t),
            Some(MetaRef::Integer(i)) => out.extend_from_slice(i.to_string().as_bytes()),
            Some(MetaRef::Boolean(b)) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    }
    out.extend_from_slice(b",\"variables\":");
    out
}

/// The `variables` object. A placeholder with one value maps to a string,
/// any other to an array of strings.
fn variables(names: &[Vec<u8>], values: &[Vec<String>], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, values)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        out.push(b':');
        match values.as_slice() {
            [one] => push_string(out, one),
            many => {
                out.push(b'[');
                for (j, value) in many.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    push_string(out, value);
                }
                out.push(b']');
            }
        }
    }
    out.push(b'}');
}

/// `,"outcomes":{...}`: each outcome variable with its value, a JSON
/// number, string, boolean or array. A value the hit lacks is `null`.
fn outcome_values<H: Hit>(names: &[Vec<u8>], hit: &H, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"outcomes\":{");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        out.push(b':');
        let list = |out: &mut Vec<u8>, items: &mut dyn Iterator<Item = Vec<u8>>| {
            out.push(b'[');
            for (j, item) in items.enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&item);
            }
            out.push(b']');
        };
        match hit.outcome(i) {
            None => out.extend_from_slice(b"null"),
            Some(OutcomeRef::Int(v)) => out.extend_from_slice(v.to_string().as_bytes()),
            Some(OutcomeRef::Float(v)) => out.extend_from_slice(&float_json(v)),
            Some(OutcomeRef::Bool(v)) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Some(OutcomeRef::Text(v)) => push_string(out, v),
            Some(OutcomeRef::Ints(v)) => {
                list(out, &mut v.iter().map(|x| x.to_string().into_bytes()))
            }
            Some(OutcomeRef::Floats(v)) => list(out, &mut v.iter().map(|x| float_json(*x))),
            Some(OutcomeRef::Texts(v)) => list(
                out,
                &mut v.iter().map(|t| {
                    let mut s = Vec::new();
                    push_string(&mut s, t);
                    s
                }),
            ),
        }
    }
    out.push(b'}');
}

/// A float as a JSON number; JSON has no NaN or infinity, so those are
/// `null`.
fn float_json(v: f64) -> Vec<u8> {
    if v.is_finite() {
        format!("{v}").into_bytes()
    } else {
        b"null".to_vec()
    }
}

/// Appends `s` as a JSON string. Only `"`, `\` and control characters are
/// escaped, with the short forms where JSON has them and lower-case hex
/// otherwise: the choices `serde_json` makes, so that the host's output did
/// not change when this replaced it.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            let hex = |n: u8| HEX[usize::from(n)];
            out.extend_from_slice(&[b'0', b'0', hex(b >> 4), hex(b & 15)]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Head {
        name: String,
        meta: Vec<(&'static str, MetaRef<'static>)>,
        placeholders: Vec<String>,
    }

    impl RuleHead for Head {
        fn name(&self) -> &str {
            &self.name
        }
        fn meta(&self, key: &str) -> Option<MetaRef<'_>> {
            self.meta.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        }
        fn placeholders(&self) -> &[String] {
            &self.placeholders
        }
    }

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}\u{fffd}😀/");
        for s in [all.as_str(), "", "plain", "\"\\", "a\u{1f}b"] {
            assert_eq!(json(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn meta_values_render_as_json_values() {
        let rule = Head {
            name: "r\"1".into(),
            meta: vec![
                ("severity", MetaRef::Integer(-42)),
                ("mitre_attack_tactic", MetaRef::Boolean(false)),
                ("mitre_attack_technique", MetaRef::Text("T1059.009")),
                ("severity", MetaRef::Text("ignored: only the first counts")),
            ],
            placeholders: vec![],
        };
        let tagger = Tagger::new("d", &[rule]);
        let hit = Match { rule: 0, variables: vec![], outcomes: vec![] };
        let mut out = Vec::new();
        tagger.tag(b"{}", &[hit], &mut out);
        let expected = concat!(
            r#"{"d":[{"rule":"r\"1","severity":-42,"mitre_attack_tactic":false,"#,
            r#""mitre_attack_technique":"T1059.009","variables":{}}]}"#,
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }

    #[test]
    fn unknown_rules_and_non_objects_are_left_alone() {
        let rule = Head { name: "r".into(), meta: vec![], placeholders: vec!["x".into()] };
        let tagger = Tagger::new("d", &[rule]);
        let hits = [
            Match { rule: 7, variables: vec![], outcomes: vec![] },
            Match { rule: 0, variables: vec![vec![]], outcomes: vec![] },
            Match { rule: 0, variables: vec![vec!["a".into(), "b".into()]], outcomes: vec![] },
        ];
        let mut out = Vec::new();
        tagger.tag(br#"{"a":1}"#, &hits, &mut out);
        let nulls = r#""severity":null,"mitre_attack_tactic":null,"mitre_attack_technique":null"#;
        let first = format!(r#"{{"rule":"r",{nulls},"variables":{{"x":[]}}}}"#);
        let second = format!(r#"{{"rule":"r",{nulls},"variables":{{"x":["a","b"]}}}}"#);
        let expected = format!(r#"{{"a":1,"d":[{first},{second}]}}"#);
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);

        out.clear();
        tagger.tag(b"[1] ", &hits, &mut out);
        assert_eq!(out, b"[1] ");
    }
}
