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

use crate::source::{self, Check, RawPath, Source, Src};
use json::{Captures, JsonError, JsonErrorKind, Kind};
use trie::PathTrie;

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

impl Reader {
    /// A reader for the UDM fields `fields` (dotted paths such as
    /// `principal.ip`); field `i` of the slice has [`FieldId`] `i`.
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
        let line = std::str::from_utf8(line)
            .map_err(|e| JsonError { offset: e.valid_up_to() as u32, kind: JsonErrorKind::Utf8 })?;
        json::scan(line, &self.trie, scratch)?;
        let caps = &*scratch;
        let source = self.sources.iter().find(|s| s.detect.iter().all(|c| check(line, caps, c)));
        Ok(Event { line, caps, source })
    }
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
                let path: Vec<&str> = udm.split('.').collect();
                return Some(FieldPlan::Slot(trie.insert(&path)));
            }
            let (_, how) = src.fields.iter().find(|(name, _)| name == udm)?;
            let mut slot = |p: RawPath| trie.insert(p);
            Some(match *how {
                Src::Path(p) => FieldPlan::Slot(slot(p)),
                Src::First(ps) => FieldPlan::First(ps.iter().map(|&p| slot(p)).collect()),
                Src::Const(c) => FieldPlan::Const(c),
                Src::Ip(p) => FieldPlan::Ip(slot(p)),
                Src::NotIp(p) => FieldPlan::NotIp(slot(p)),
                Src::Presence(p, yes, no) => FieldPlan::Presence(slot(p), yes, no),
            })
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

impl Event<'_> {
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
        let hit = self.each_value(field, &mut |v| {
            seen = true;
            f(v)
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

    fn each_value(&self, field: FieldId, f: &mut dyn FnMut(&str) -> bool) -> bool {
        let Some(plan) = self.source.and_then(|s| s.fields[field as usize].as_ref()) else {
            return false;
        };
        let (line, caps) = (self.line, self.caps);
        let text = |c: &json::Capture| caps.text(line, c);
        match plan {
            FieldPlan::Slot(slot) => scalars(caps, *slot).any(|c| f(text(c))),
            FieldPlan::First(slots) => {
                let Some(&slot) = slots.iter().find(|&&s| scalars(caps, s).next().is_some()) else {
                    return false;
                };
                scalars(caps, slot).any(|c| f(text(c)))
            }
            FieldPlan::Const(value) => f(value),
            FieldPlan::Ip(slot) => {
                scalars(caps, *slot).filter_map(|c| source::ip_part(text(c))).any(f)
            }
            FieldPlan::NotIp(slot) => {
                scalars(caps, *slot).map(text).filter(|v| source::ip_part(v).is_none()).any(f)
            }
            FieldPlan::Presence(slot, yes, no) => {
                f(if scalars(caps, *slot).next().is_some() { yes } else { no })
            }
        }
    }
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
        let line = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},
            "eventTime":"2024-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser",
            "sourceIPAddress":"198.51.100.7","requestParameters":{"userName":"bob"}}"#;
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
        let line = r#"{"eventName":"AssumeRole","eventSource":"sts.amazonaws.com","sourceIPAddress":"ec2.amazonaws.com"}"#;
        let (_, v) = read_fields(line, &["principal.ip", "principal.hostname"]);
        assert_eq!(v, [vec![""], vec!["ec2.amazonaws.com"]]);
    }

    #[test]
    fn azure_operation_name_as_string_or_object() {
        let flat = r#"{"operationName":"Microsoft.Compute/virtualMachines/write","category":"Administrative",
            "callerIpAddress":"10.0.0.1:42781","identity":"Some Identity"}"#;
        let nested = r#"{"operationName":{"value":"MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE","localizedValue":"x"},
            "category":{"value":"Administrative"},"caller":"a@b.c"}"#;
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
        let line = r#"{"metadata":{"product_name":"AWS CloudTrail"},"principal":{"ip":["1.1.1.1","2.2.2.2"]}}"#;
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
}
