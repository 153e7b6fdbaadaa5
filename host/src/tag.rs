//! The tag: what Tripline adds to an event that matched.
//!
//! A matching event gets one more top-level member, appended before its
//! closing brace; the rest of the line is left byte for byte as it was.
//! The format is specified in the README ("The tag"); this module is its
//! one implementation.

use serde_json::{Map, Value};

use crate::component::{Detection, MetaValue, RuleInfo};

/// Renders detections for one set of loaded rules.
pub struct Tagger {
    /// `"name":[` with the field name escaped.
    open: Vec<u8>,
    /// Per rule: the detection object up to and including `"variables":`.
    prefixes: Vec<Vec<u8>>,
    /// Per rule: its placeholder names, as JSON strings.
    placeholders: Vec<Vec<Vec<u8>>>,
}

/// The meta keys copied into every detection, besides the rule name.
const META_KEYS: [&str; 3] = ["severity", "mitre_attack_tactic", "mitre_attack_technique"];

impl Tagger {
    pub fn new(field: &str, rules: &[RuleInfo]) -> Tagger {
        let mut open = json_string(field);
        open.extend_from_slice(b":[");
        let prefixes = rules
            .iter()
            .map(|rule| {
                let mut out = b"{\"rule\":".to_vec();
                out.extend(json_string(&rule.name));
                for key in META_KEYS {
                    out.push(b',');
                    out.extend(json_string(key));
                    out.push(b':');
                    let value =
                        rule.meta.iter().find(|m| m.key == key).map(|m| meta_json(&m.value));
                    out.extend(
                        serde_json::to_vec(&value.unwrap_or(Value::Null))
                            .expect("values serialize"),
                    );
                }
                out.extend_from_slice(b",\"variables\":");
                out
            })
            .collect();
        let placeholders =
            rules.iter().map(|r| r.placeholders.iter().map(|p| json_string(p)).collect()).collect();
        Tagger { open, prefixes, placeholders }
    }

    /// Appends `line` with the tag for `detections` spliced in to `out`.
    /// `line` is a JSON object without its newline, as the component
    /// confirmed when it returned detections for it.
    pub fn tag(&self, line: &[u8], detections: &[Detection], out: &mut Vec<u8>) {
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
        for (i, d) in detections.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.detection(d, out);
        }
        out.push(b']');
        out.extend_from_slice(&line[close..]);
    }

    fn detection(&self, d: &Detection, out: &mut Vec<u8>) {
        let rule = d.rule as usize;
        out.extend_from_slice(&self.prefixes[rule]);
        out.push(b'{');
        for (i, (name, values)) in self.placeholders[rule].iter().zip(&d.variables).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name);
            out.push(b':');
            match values.as_slice() {
                [one] => out.extend(json_string(one)),
                many => out.extend(serde_json::to_vec(many).expect("strings serialize")),
            }
        }
        out.extend_from_slice(b"}}");
    }
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).expect("strings serialize")
}

/// A meta value as JSON.
pub fn meta_json(value: &MetaValue) -> Value {
    match value {
        MetaValue::Text(t) => Value::String(t.clone()),
        MetaValue::Integer(i) => Value::from(*i),
        MetaValue::Boolean(b) => Value::Bool(*b),
    }
}

/// A rule's description as JSON, for `tripline info`. Meta keys that repeat
/// become arrays.
pub fn rule_json(rule: &RuleInfo) -> Value {
    let mut meta = Map::new();
    for entry in &rule.meta {
        let value = meta_json(&entry.value);
        match meta.get_mut(&entry.key) {
            None => {
                meta.insert(entry.key.clone(), value);
            }
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
        }
    }
    serde_json::json!({
        "name": rule.name,
        "source": rule.source_name,
        "meta": meta,
        "placeholders": rule.placeholders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::MetaEntry;

    fn rule() -> RuleInfo {
        RuleInfo {
            name: "r".into(),
            source_name: "r.yaral".into(),
            meta: vec![MetaEntry { key: "severity".into(), value: MetaValue::Text("HIGH".into()) }],
            placeholders: vec!["ip".into(), "who".into()],
        }
    }

    fn tag(line: &str) -> String {
        let tagger = Tagger::new("detections", &[rule()]);
        let d = Detection {
            rule: 0,
            variables: vec![vec!["1.2.3.4".into()], vec!["a".into(), "b\"".into()]],
        };
        let mut out = Vec::new();
        tagger.tag(line.as_bytes(), &[d], &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn appends_before_the_closing_brace() {
        let expected = r#"{"a": 1 ,"detections":[{"rule":"r","severity":"HIGH","mitre_attack_tactic":null,"mitre_attack_technique":null,"variables":{"ip":"1.2.3.4","who":["a","b\""]}}]}"#;
        assert_eq!(tag(r#"{"a": 1 }"#), expected);
    }

    #[test]
    fn keeps_trailing_whitespace_and_handles_empty_objects() {
        assert!(tag("{ }\r").starts_with(r#"{ "detections":[{"rule":"r""#));
        assert!(tag("{ }\r").ends_with("}}]}\r"));
        let parsed: Value = serde_json::from_str(&tag(r#"{"x":{"y":[1]}}"#)).unwrap();
        assert_eq!(parsed["detections"][0]["variables"]["ip"], "1.2.3.4");
        assert_eq!(parsed["x"]["y"][0], 1);
    }
}
