//! The event reader: from one line of JSON to the UDM field values that the
//! loaded rules read.
//!
//! A [`Reader`] is built once for the set of UDM fields the rules use. It
//! knows, for every log source, which raw JSON paths feed those fields, and
//! puts all of them, with the paths that tell sources apart, in one trie.
//! Reading an event is one scan of its text (see [`json`]) followed by a
//! look at which source's checks pass. Field values are then produced on
//! demand, borrowed from the line.

pub mod json;
pub mod trie;
pub mod walk;

use std::borrow::Cow;

use crate::source::{self, Check, RawPath, Source, Src};
use json::{Captures, JsonError, Kind};
use trie::PathTrie;
pub use walk::Step;

/// A UDM field the loaded rules read, numbered by the reader.
pub type FieldId = u16;

/// A source's way of producing one field, with paths resolved to slots.
#[derive(Clone, Debug)]
enum FieldPlan {
    Slot(u16),
    First(Box<[u16]>),
    Const(&'static str),
    Ip(u16),
    NotIp(u16),
    Presence(u16, &'static str, &'static str),
    /// Map keys and indexes, followed in the value at the first base slot
    /// that holds anything.
    Walk(Box<[u16]>, Box<[Step]>),
    /// The values of the first plan, or if it has none, of the second.
    Either(Box<FieldPlan>, Box<FieldPlan>),
    /// A timestamp as Unix seconds, from RFC 3339 text or a number.
    Seconds(Box<FieldPlan>),
}

#[derive(Clone, Debug)]
enum CheckPlan {
    Str(u16),
    Object(u16),
    OneOf(Box<[u16]>, &'static [&'static str]),
}

#[derive(Debug)]
struct SourcePlan {
    id: &'static str,
    detect: Vec<CheckPlan>,
    /// By [`FieldId`]; `None` where the source does not give the field.
    fields: Vec<Option<FieldPlan>>,
}

/// Reads events for one set of UDM fields.
#[derive(Debug)]
pub struct Reader {
    trie: PathTrie,
    sources: Vec<SourcePlan>,
}

/// Splits a field name as the engine writes it (`a.b["k"][0].c`) into its
/// steps. Keys are in double quotes with `\"` and `\\` escaped.
pub fn parse_name(name: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut chars = name.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, steps: &mut Vec<Step>| {
        if !word.is_empty() {
            steps.push(Step::Name(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut word, &mut steps),
            '[' => {
                flush(&mut word, &mut steps);
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut key = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => key.extend(chars.next()),
                            '"' => break,
                            c => key.push(c),
                        }
                    }
                    steps.push(Step::Key(key));
                } else {
                    let digits: String = chars.by_ref().take_while(|&c| c != ']').collect();
                    steps.push(Step::Index(digits.trim().parse().unwrap_or(i64::MAX)));
                    continue;
                }
                // The closing bracket after a key.
                if chars.peek() == Some(&']') {
                    chars.next();
                }
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut steps);
    steps
}

/// Writes `steps` as a field name that [`parse_name`] reads back.
pub fn write_name(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Name(n) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(n);
            }
            Step::Key(k) => {
                out.push_str("[\"");
                for c in k.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push_str("\"]");
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl Reader {
    /// A reader for the UDM fields `fields` (names such as `principal.ip`
    /// or `target.resource.attribute.labels["k"]`, see [`parse_name`]);
    /// field `i` of the slice has [`FieldId`] `i`.
    pub fn new(fields: &[String]) -> Reader {
        let mut trie = PathTrie::default();
        let sources = source::all().map(|src| plan_source(src, fields, &mut trie)).collect();
        Reader { trie, sources }
    }

    /// Scratch space for [`Reader::read`], reused from event to event.
    pub fn scratch(&self) -> Captures {
        Captures::new(self.trie.slot_count())
    }

    /// Reads one event. `scratch` must come from this reader's
    /// [`Reader::scratch`].
    pub fn read<'a>(
        &'a self,
        line: &'a [u8],
        scratch: &'a mut Captures,
    ) -> Result<Event<'a>, JsonError> {
        json::scan(line, &self.trie, scratch)?;
        debug_assert!(std::str::from_utf8(line).is_ok(), "the scanner checks UTF-8");
        // SAFETY: `scan` accepted the line, and it accepts only valid UTF-8:
        // outside strings its grammar admits ASCII alone, and inside them it
        // checks each byte past ASCII as part of a well-formed sequence
        // (see `json::utf8_sequence`, and the tests that hold it to
        // `std::str::from_utf8`). A second pass over every byte to prove it
        // again is what this saves.
        let line = unsafe { std::str::from_utf8_unchecked(line) };
        let caps = &*scratch;
        let source = self.sources.iter().find(|s| s.detect.iter().all(|c| check(line, caps, c)));
        Ok(Event { line, caps, source })
    }
}

/// Rules read timestamps and durations as numbers through `.seconds`; proto3
/// JSON writes the timestamp itself (`"2024-05-01T10:00:00Z"`) or the
/// duration as text (`"12.5s"`).
fn seconds_parent(name: &str) -> Option<&str> {
    name.strip_suffix(".seconds").filter(|p| !p.is_empty() && !p.ends_with(']'))
}

fn plan_udm(name: &str, trie: &mut PathTrie) -> FieldPlan {
    let steps = parse_name(name);
    let plain = steps.iter().take_while(|s| matches!(s, Step::Name(_))).count();
    let names: Vec<&str> = steps[..plain]
        .iter()
        .map(|s| match s {
            Step::Name(n) => n.as_str(),
            _ => unreachable!("counted names only"),
        })
        .collect();
    if plain == steps.len() {
        let direct = FieldPlan::Slot(trie.insert(&names));
        return match seconds_parent(name) {
            Some(_) => {
                let parent = FieldPlan::Slot(trie.insert(&names[..names.len() - 1]));
                FieldPlan::Either(Box::new(direct), Box::new(FieldPlan::Seconds(Box::new(parent))))
            }
            None => direct,
        };
    }
    let mut bases = vec![trie.insert(&names)];
    // A `Struct` (`additional.fields["k"]`) is written in proto3 JSON as a
    // plain object, without the `fields` level the rule names.
    if names.len() > 1 && names.last() == Some(&"fields") {
        bases.push(trie.insert(&names[..names.len() - 1]));
    }
    FieldPlan::Walk(bases.into(), steps[plain..].into())
}

fn plan_raw(src: &'static Source, udm: &str, trie: &mut PathTrie) -> Option<FieldPlan> {
    let Some((_, how)) = src.fields.iter().find(|(name, _)| *name == udm) else {
        let parent = seconds_parent(udm)?;
        return Some(FieldPlan::Seconds(Box::new(plan_raw(src, parent, trie)?)));
    };
    let mut slot = |p: RawPath| trie.insert(p);
    Some(match *how {
        Src::Path(p) => FieldPlan::Slot(slot(p)),
        Src::First(ps) => FieldPlan::First(ps.iter().map(|&p| slot(p)).collect()),
        Src::Const(c) => FieldPlan::Const(c),
        Src::Ip(p) => FieldPlan::Ip(slot(p)),
        Src::NotIp(p) => FieldPlan::NotIp(slot(p)),
        Src::Presence(p, yes, no) => FieldPlan::Presence(slot(p), yes, no),
    })
}

fn plan_source(src: &'static Source, fields: &[String], trie: &mut PathTrie) -> SourcePlan {
    let detect = src
        .detect
        .iter()
        .map(|c| match *c {
            Check::Str(p) => CheckPlan::Str(trie.insert(p)),
            Check::Object(p) => CheckPlan::Object(trie.insert(p)),
            Check::OneOf(paths, values) => {
                CheckPlan::OneOf(paths.iter().map(|p| trie.insert(p)).collect(), values)
            }
        })
        .collect();
    let fields = fields
        .iter()
        .map(|udm| {
            if std::ptr::eq(src, &source::UDM) {
                Some(plan_udm(udm, trie))
            } else {
                plan_raw(src, udm, trie)
            }
        })
        .collect();
    SourcePlan { id: src.id, detect, fields }
}

fn scalars(caps: &Captures, slot: u16) -> impl Iterator<Item = &json::Capture> {
    caps.get(slot).iter().filter(|c| !matches!(c.kind, Kind::Container | Kind::Object))
}

fn first_str<'a>(line: &'a str, caps: &'a Captures, slot: u16) -> Option<&'a str> {
    caps.get(slot).iter().find(|c| c.kind == Kind::Str).map(|c| caps.text(line, c))
}

fn check(line: &str, caps: &Captures, c: &CheckPlan) -> bool {
    match c {
        CheckPlan::Str(slot) => first_str(line, caps, *slot).is_some(),
        CheckPlan::Object(slot) => caps.get(*slot).iter().any(|c| c.kind == Kind::Object),
        CheckPlan::OneOf(slots, values) => {
            let found = slots.iter().find_map(|&s| first_str(line, caps, s));
            found.is_some_and(|v| {
                values.is_empty() || values.iter().any(|w| w.eq_ignore_ascii_case(v))
            })
        }
    }
}

/// One event as the rules see it: a recognised source and the values of
/// the reader's fields.
pub struct Event<'a> {
    line: &'a str,
    caps: &'a Captures,
    source: Option<&'a SourcePlan>,
}

impl<'a> Event<'a> {
    /// The id of the source the event was recognised as (`udm`,
    /// `aws_cloudtrail`, ...), or `None`: then every field is missing.
    pub fn source_id(&self) -> Option<&'static str> {
        self.source.map(|s| s.id)
    }

    /// Calls `f` with each value of `field` until it returns `true`, and
    /// says whether it did. A field with no value reads as its zero value,
    /// the empty string, as in YARA-L.
    pub fn any_value(&self, field: FieldId, mut f: impl FnMut(&str) -> bool) -> bool {
        let mut seen = false;
        let hit = self.each(field, &mut |v| {
            seen = true;
            f(&v)
        });
        if seen {
            hit
        } else {
            f("")
        }
    }

    /// Every value of `field`, or its zero value.
    pub fn values(&self, field: FieldId) -> Vec<String> {
        let mut out = Vec::new();
        self.any_value(field, |v| {
            out.push(v.to_string());
            false
        });
        out
    }

    /// Calls `f` with each value the event really has for `field` (none if
    /// the field is missing) until it returns `true`; says whether it did.
    /// Values are borrowed from the event where they can be.
    pub fn each(&self, field: FieldId, f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
        let Some(plan) = self.source.and_then(|s| s.fields.get(field as usize)?.as_ref()) else {
            return false;
        };
        self.each_of(plan, f)
    }

    fn each_of(&self, plan: &FieldPlan, f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
        let (line, caps) = (self.line, self.caps);
        let text = |c: &json::Capture| caps.text(line, c);
        match plan {
            FieldPlan::Slot(slot) => scalars(caps, *slot).any(|c| f(Cow::Borrowed(text(c)))),
            FieldPlan::First(slots) => {
                let Some(&slot) = slots.iter().find(|&&s| scalars(caps, s).next().is_some()) else {
                    return false;
                };
                scalars(caps, slot).any(|c| f(Cow::Borrowed(text(c))))
            }
            FieldPlan::Const(value) => f(Cow::Borrowed(value)),
            FieldPlan::Ip(slot) => scalars(caps, *slot)
                .filter_map(|c| source::ip_part(text(c)))
                .any(|v| f(Cow::Borrowed(v))),
            FieldPlan::NotIp(slot) => scalars(caps, *slot)
                .map(text)
                .filter(|v| source::ip_part(v).is_none())
                .any(|v| f(Cow::Borrowed(v))),
            FieldPlan::Presence(slot, yes, no) => {
                f(Cow::Borrowed(if scalars(caps, *slot).next().is_some() { yes } else { no }))
            }
            FieldPlan::Walk(bases, steps) => {
                let Some(&base) = bases.iter().find(|&&s| !caps.get(s).is_empty()) else {
                    return false;
                };
                self.walk(base, steps, f)
            }
            FieldPlan::Either(first, second) => {
                let mut seen = false;
                let hit = self.each_of(first, &mut |v| {
                    seen = true;
                    f(v)
                });
                if seen {
                    hit
                } else {
                    self.each_of(second, f)
                }
            }
            FieldPlan::Seconds(inner) => self.each_of(inner, &mut |v| match unix_seconds(&v) {
                Some(secs) => f(Cow::Owned(secs.to_string())),
                None => false,
            }),
        }
    }

    /// Follows `steps` from each value recorded at `slot`. An array is one
    /// capture followed by its elements' captures, which the walk covers.
    fn walk(&self, slot: u16, steps: &[Step], f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
        let (line, caps) = (self.line, self.caps);
        let all = caps.get(slot);
        let mut i = 0;
        while let Some(cap) = all.get(i) {
            match cap.kind {
                Kind::Object | Kind::Container => {
                    let at = cap.start as usize;
                    if walk::visit(line, at, steps, f) {
                        return true;
                    }
                    i += walk::capture_count(line, at);
                }
                _ => {
                    let only_zero = steps.iter().all(|s| *s == Step::Index(0));
                    if only_zero && f(Cow::Borrowed(caps.text(line, cap))) {
                        return true;
                    }
                    i += 1;
                }
            }
        }
        false
    }
}

/// A timestamp as Unix seconds: RFC 3339 text (`2024-05-01T10:00:00.5Z`,
/// `...+02:00`), or a number, taken as seconds already.
pub fn unix_seconds(v: &str) -> Option<i64> {
    let v = v.trim();
    let number = v.strip_suffix('s').unwrap_or(v);
    if let Ok(n) = number.parse::<f64>() {
        return n.is_finite().then_some(n.floor() as i64);
    }
    let b = v.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = v.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let secs = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        None => 0,
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_fields(line: &str, fields: &[&str]) -> (Option<&'static str>, Vec<Vec<String>>) {
        let names: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        let reader = Reader::new(&names);
        let mut scratch = reader.scratch();
        let event = reader.read(line.as_bytes(), &mut scratch).unwrap();
        let values = (0..fields.len() as u16).map(|f| event.values(f)).collect();
        (event.source_id(), values)
    }

    #[test]
    fn cloudtrail_record_maps_to_udm() {
        let line = r#"{"eventVersion":"1.08",
            "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},
            "eventTime":"2024-01-01T00:00:00Z","eventSource":"iam.amazonaws.com",
            "eventName":"CreateUser","sourceIPAddress":"198.51.100.7",
            "requestParameters":{"userName":"bob"}}"#;
        let (src, v) = read_fields(
            line,
            &[
                "metadata.product_name",
                "metadata.product_event_type",
                "principal.ip",
                "principal.user.userid",
                "target.resource.name",
                "principal.hostname",
            ],
        );
        assert_eq!(src, Some("aws_cloudtrail"));
        assert_eq!(
            v,
            [
                vec!["AWS CloudTrail"],
                vec!["CreateUser"],
                vec!["198.51.100.7"],
                vec!["arn:aws:iam::1:user/a"],
                vec!["bob"],
                vec![""],
            ]
        );
    }

    #[test]
    fn service_name_in_source_ip_goes_to_hostname() {
        let line = r#"{"eventName":"AssumeRole","eventSource":"sts.amazonaws.com",
            "sourceIPAddress":"ec2.amazonaws.com"}"#;
        let (_, v) = read_fields(line, &["principal.ip", "principal.hostname"]);
        assert_eq!(v, [vec![""], vec!["ec2.amazonaws.com"]]);
    }

    #[test]
    fn azure_operation_name_as_string_or_object() {
        let flat = r#"{"operationName":"Microsoft.Compute/virtualMachines/write",
            "category":"Administrative","callerIpAddress":"10.0.0.1:42781",
            "identity":"Some Identity"}"#;
        let nested = r#"{"operationName":{"value":"MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
            "localizedValue":"x"},"category":{"value":"Administrative"},"caller":"a@b.c"}"#;
        let fields = ["metadata.product_event_type", "principal.ip", "principal.user.userid"];
        let (src, v) = read_fields(flat, &fields);
        assert_eq!(src, Some("azure_activity"));
        assert_eq!(
            v,
            [
                vec!["Microsoft.Compute/virtualMachines/write"],
                vec!["10.0.0.1"],
                vec!["Some Identity"]
            ]
        );
        let (src, v) = read_fields(nested, &fields);
        assert_eq!(src, Some("azure_activity"));
        assert_eq!(v, [vec!["MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE"], vec![""], vec!["a@b.c"]]);
    }

    #[test]
    fn udm_events_are_read_at_their_own_paths() {
        let line = r#"{"metadata":{"product_name":"AWS CloudTrail"},
            "principal":{"ip":["1.1.1.1","2.2.2.2"]}}"#;
        let (src, v) = read_fields(line, &["metadata.product_name", "principal.ip"]);
        assert_eq!(src, Some("udm"));
        assert_eq!(v, [vec!["AWS CloudTrail"], vec!["1.1.1.1", "2.2.2.2"]]);
    }

    #[test]
    fn unknown_shapes_read_as_missing() {
        let (src, v) =
            read_fields(r#"{"eventname":"CreateUser"}"#, &["metadata.product_event_type"]);
        assert_eq!(src, None);
        assert_eq!(v, [vec![""]]);
    }

    #[test]
    fn names_with_keys_and_indexes_round_trip() {
        let name = r#"a.b["k \"q\""][2].c"#;
        let steps = parse_name(name);
        assert_eq!(
            steps,
            [
                Step::Name("a".into()),
                Step::Name("b".into()),
                Step::Key("k \"q\"".into()),
                Step::Index(2),
                Step::Name("c".into()),
            ]
        );
        assert_eq!(write_name(&steps), name);
    }

    #[test]
    fn timestamps_and_durations_read_as_seconds() {
        assert_eq!(unix_seconds("2024-05-01T10:00:00Z"), Some(1_714_557_600));
        assert_eq!(unix_seconds("2024-05-01T12:00:00.75+02:00"), Some(1_714_557_600));
        assert_eq!(unix_seconds("1714557600"), Some(1_714_557_600));
        assert_eq!(unix_seconds("12.5s"), Some(12));
        assert_eq!(unix_seconds("yesterday"), None);
        let line = r#"{"metadata":{"event_timestamp":"1970-01-02T00:00:00Z"}}"#;
        let (_, v) = read_fields(line, &["metadata.event_timestamp.seconds"]);
        assert_eq!(v, [vec!["86400"]]);
    }
}
