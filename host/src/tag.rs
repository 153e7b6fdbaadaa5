//! The tag: what Tripline adds to an event that matched.
//!
//! A matching event gets one more top-level member, appended before its
//! closing brace; the rest of the line is left byte for byte as it was.
//! The format is specified in the README ("The tag"). Its one
//! implementation is the engine's `tag` module, shared with the Fluent Bit
//! filter module so that both write the same bytes; this module lets it
//! read the rule descriptions and detections that a component returns.

use serde_json::{Map, Value};
use tripline_engine::tag::{Hit, MetaRef, OutcomeRef, RuleHead};

pub use tripline_engine::tag::Tagger;

use crate::component::{Detection, MetaValue, OutcomeValue, RuleInfo};

impl RuleHead for RuleInfo {
    fn name(&self) -> &str {
        &self.name
    }

    fn meta(&self, key: &str) -> Option<MetaRef<'_>> {
        self.meta.iter().find(|m| m.key == key).map(|m| match &m.value {
            MetaValue::Text(t) => MetaRef::Text(t),
            MetaValue::Integer(i) => MetaRef::Integer(*i),
            MetaValue::Boolean(b) => MetaRef::Boolean(*b),
        })
    }

    fn placeholders(&self) -> &[String] {
        &self.placeholders
    }

    fn outcome_names(&self) -> &[String] {
        &self.outcomes
    }
}

impl Hit for Detection {
    fn rule(&self) -> u32 {
        self.rule
    }

    fn variables(&self) -> &[Vec<String>] {
        &self.variables
    }

    fn outcome(&self, i: usize) -> Option<OutcomeRef<'_>> {
        Some(match self.outcomes.get(i)? {
            OutcomeValue::Integer(v) => OutcomeRef::Int(*v),
            OutcomeValue::Float(v) => OutcomeRef::Float(*v),
            OutcomeValue::Text(v) => OutcomeRef::Text(v),
            OutcomeValue::Boolean(v) => OutcomeRef::Bool(*v),
            OutcomeValue::Integers(v) => OutcomeRef::Ints(v),
            OutcomeValue::Floats(v) => OutcomeRef::Floats(v),
            OutcomeValue::Texts(v) => OutcomeRef::Texts(v),
        })
    }
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
        "outcomes": rule.outcomes,
        "windowed": rule.windowed,
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
            outcomes: vec![],
            windowed: None,
            warnings: vec![],
        }
    }

    fn tag(line: &str) -> String {
        let tagger = Tagger::new("detections", &[rule()]);
        let d = Detection {
            rule: 0,
            variables: vec![vec!["1.2.3.4".into()], vec!["a".into(), "b\"".into()]],
            outcomes: vec![],
        };
        let mut out = Vec::new();
        tagger.tag(line.as_bytes(), &[d], &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn appends_before_the_closing_brace() {
        let expected = concat!(
            r#"{"a": 1 ,"detections":[{"rule":"r","severity":"HIGH","mitre_attack_tactic":null,"#,
            r#""mitre_attack_technique":null,"variables":{"ip":"1.2.3.4","who":["a","b\""]}}]}"#,
        );
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

    #[test]
    fn outcomes_follow_the_variables() {
        let mut info = rule();
        info.outcomes = vec!["risk_score".into(), "ips".into(), "ratio".into()];
        let tagger = Tagger::new("detections", &[info]);
        let d = Detection {
            rule: 0,
            variables: vec![vec!["1.2.3.4".into()], vec!["a".into()]],
            outcomes: vec![
                OutcomeValue::Integer(75),
                OutcomeValue::Texts(vec!["1.2.3.4".into(), "5.6.7.8".into()]),
                OutcomeValue::Float(0.5),
            ],
        };
        let mut out = Vec::new();
        tagger.tag(b"{}", &[d], &mut out);
        let text = String::from_utf8(out).unwrap();
        let expected = concat!(
            r#""variables":{"ip":"1.2.3.4","who":"a"},"#,
            r#""outcomes":{"risk_score":75,"ips":["1.2.3.4","5.6.7.8"],"ratio":0.5}}]}"#,
        );
        assert!(text.ends_with(expected), "{text}");
    }
}
