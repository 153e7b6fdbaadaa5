//! The plain native filter that every benchmark figure is a ratio to.
//!
//! It stands alone, with no dependency on the rest of Tripline, so that
//! the peer benchmarks in `benches/vrl` can build the same baseline into
//! their own process and measure it beside their subject.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;

/// The default rule, as the component has it built in.
pub const DEFAULT_RULE: &str = include_str!("../../rules/default/cloud_api_abuse_t1059_009.yaral");

#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow)]
    user_identity: Option<Identity<'a>>,
}

/// The baseline: what a careful engineer would write by hand for this one
/// detection over CloudTrail records. serde_json reads a borrowed struct
/// of just the fields the rule uses, the `regex` crate tests the action,
/// and the tag is spliced into the line.
pub struct PlainFilter {
    re: Regex,
}

impl Default for PlainFilter {
    fn default() -> Self {
        PlainFilter::new()
    }
}

/// The default rule's action pattern, read from the rule file rather than
/// copied, so that no filter built on it can drift from the rule.
pub fn action_pattern() -> &'static str {
    let line = DEFAULT_RULE.lines().find(|l| l.trim_start().starts_with("`(?i)"));
    let pattern = line.expect("the default rule has a backtick pattern").trim();
    pattern.trim_matches('`')
}

/// Filters NDJSON `events` into `out`, replacing what it held, one line at
/// a time through `line`, which writes the line (tagged or not) and says
/// whether it tagged it. Empty lines are dropped, as Vector's
/// newline-delimited framing drops them. Returns how many were tagged.
pub fn filter_lines(
    events: &[u8],
    out: &mut Vec<u8>,
    mut line: impl FnMut(&[u8], &mut Vec<u8>) -> bool,
) -> usize {
    out.clear();
    let mut tagged = 0;
    for event in events.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if line(event, out) {
            tagged += 1;
        }
        out.push(b'\n');
    }
    tagged
}

impl PlainFilter {
    /// The filter for the default rule's action pattern.
    pub fn new() -> PlainFilter {
        PlainFilter { re: Regex::new(action_pattern()).expect("the pattern compiles") }
    }

    /// Filters NDJSON `events` into `out`, replacing what it held, and
    /// returns how many events it tagged.
    pub fn run(&self, events: &[u8], out: &mut Vec<u8>) -> usize {
        filter_lines(events, out, |line, out| self.line(line, out))
    }

    fn line(&self, line: &[u8], out: &mut Vec<u8>) -> bool {
        let Ok(record) = serde_json::from_slice::<Record>(line) else {
            out.extend_from_slice(line);
            return false;
        };
        let hit = record.event_source.is_some()
            && record.event_name.as_deref().is_some_and(|n| self.re.is_match(n));
        if !hit {
            out.extend_from_slice(line);
            return false;
        }
        out.extend_from_slice(&line[..line.len() - 1]);
        out.extend_from_slice(
            br#","detections":[{"rule":"cloud_api_abuse_t1059_009","variables":{"src_ip":"#,
        );
        serde_json::to_writer(&mut *out, record.source_ip.as_deref().unwrap_or("")).unwrap();
        out.extend_from_slice(br#","actor":"#);
        let actor = record.user_identity.as_ref().and_then(|u| u.arn.as_deref()).unwrap_or("");
        serde_json::to_writer(&mut *out, actor).unwrap();
        out.extend_from_slice(b"}}]}");
        true
    }
}
