//! YARA-L's functions: their signatures, checked when a rule compiles, and
//! their implementations, run per event.
//!
//! Arguments that shape a function (a regex pattern, a time zone, a format)
//! must be constants, so they are compiled once with the rule. Every other
//! argument may be any expression.

use regex::Regex;

use crate::reader::{days_from_civil, unix_seconds};
use crate::value::{float_text, Val};

/// The static type of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Float,
    Bool,
    /// A list of strings, numbers, or both.
    List,
}

/// How a function reads one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// One value per call; a repeated field gives one call per element.
    Scalar,
    /// A repeated field taken whole.
    Array,
    /// A constant regular expression.
    Pattern,
    /// A constant string: a time zone or a format.
    Const,
}

/// A function as the compiler sees it.
pub struct Sig {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    /// The kind of each parameter; the last repeats for variadic functions.
    pub params: &'static [Param],
    pub ret: Ty,
}

const S: Param = Param::Scalar;
const A: Param = Param::Array;
const P: Param = Param::Pattern;
const C: Param = Param::Const;
const MANY: usize = usize::MAX;

/// The functions the evaluator runs.
pub const SIGS: &[Sig] = &[
    Sig { name: "re.regex", min: 2, max: 2, params: &[S, P], ret: Ty::Bool },
    Sig { name: "re.capture", min: 2, max: 2, params: &[S, P], ret: Ty::Str },
    Sig { name: "re.replace", min: 3, max: 3, params: &[S, P, S], ret: Ty::Str },
    Sig { name: "strings.contains", min: 2, max: 2, params: &[S, S], ret: Ty::Bool },
    Sig { name: "strings.starts_with", min: 2, max: 2, params: &[S, S], ret: Ty::Bool },
    Sig { name: "strings.ends_with", min: 2, max: 2, params: &[S, S], ret: Ty::Bool },
    Sig { name: "strings.to_lower", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.to_upper", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.concat", min: 1, max: MANY, params: &[S], ret: Ty::Str },
    Sig { name: "strings.coalesce", min: 1, max: MANY, params: &[S], ret: Ty::Str },
    Sig { name: "strings.base64_decode", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.length", min: 1, max: 1, params: &[S], ret: Ty::Int },
    Sig { name: "strings.trim", min: 1, max: 2, params: &[S, S], ret: Ty::Str },
    Sig { name: "strings.ltrim", min: 1, max: 2, params: &[S, S], ret: Ty::Str },
    Sig { name: "strings.rtrim", min: 1, max: 2, params: &[S, S], ret: Ty::Str },
    Sig { name: "strings.reverse", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.count_substrings", min: 2, max: 2, params: &[S, S], ret: Ty::Int },
    Sig { name: "strings.extract_domain", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.extract_hostname", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.url_decode", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "strings.split", min: 1, max: 2, params: &[S, S], ret: Ty::List },
    Sig { name: "net.ip_in_range_cidr", min: 2, max: 2, params: &[S, S], ret: Ty::Bool },
    Sig { name: "timestamp.current_seconds", min: 0, max: 0, params: &[], ret: Ty::Int },
    Sig { name: "timestamp.now", min: 0, max: 0, params: &[], ret: Ty::Int },
    Sig { name: "timestamp.get_hour", min: 1, max: 2, params: &[S, C], ret: Ty::Int },
    Sig { name: "timestamp.get_minute", min: 1, max: 2, params: &[S, C], ret: Ty::Int },
    Sig { name: "timestamp.get_day_of_week", min: 1, max: 2, params: &[S, C], ret: Ty::Int },
    Sig { name: "timestamp.get_week", min: 1, max: 2, params: &[S, C], ret: Ty::Int },
    Sig { name: "timestamp.get_date", min: 1, max: 2, params: &[S, C], ret: Ty::Str },
    Sig { name: "timestamp.get_timestamp", min: 1, max: 3, params: &[S, C, C], ret: Ty::Str },
    Sig { name: "timestamp.as_unix_seconds", min: 1, max: 2, params: &[S, C], ret: Ty::Int },
    Sig { name: "math.abs", min: 1, max: 1, params: &[S], ret: Ty::Float },
    Sig { name: "math.round", min: 1, max: 2, params: &[S, S], ret: Ty::Float },
    Sig { name: "math.ceil", min: 1, max: 1, params: &[S], ret: Ty::Int },
    Sig { name: "math.floor", min: 1, max: 1, params: &[S], ret: Ty::Int },
    Sig { name: "math.log", min: 1, max: 1, params: &[S], ret: Ty::Float },
    Sig { name: "math.sqrt", min: 1, max: 1, params: &[S], ret: Ty::Float },
    Sig { name: "math.pow", min: 2, max: 2, params: &[S, S], ret: Ty::Float },
    Sig { name: "arrays.length", min: 1, max: 1, params: &[A], ret: Ty::Int },
    Sig { name: "arrays.size", min: 1, max: 1, params: &[A], ret: Ty::Int },
    Sig { name: "arrays.contains", min: 2, max: 2, params: &[A, S], ret: Ty::Bool },
    Sig { name: "arrays.join_string", min: 1, max: 2, params: &[A, S], ret: Ty::Str },
    Sig { name: "arrays.index_to_str", min: 2, max: 2, params: &[A, S], ret: Ty::Str },
    Sig { name: "arrays.index_to_int", min: 2, max: 2, params: &[A, S], ret: Ty::Int },
    Sig { name: "arrays.index_to_float", min: 2, max: 2, params: &[A, S], ret: Ty::Float },
    Sig { name: "arrays.concat", min: 2, max: 2, params: &[A, A], ret: Ty::List },
    Sig { name: "cast.as_int", min: 1, max: 1, params: &[S], ret: Ty::Int },
    Sig { name: "cast.as_float", min: 1, max: 1, params: &[S], ret: Ty::Float },
    Sig { name: "cast.as_string", min: 1, max: 1, params: &[S], ret: Ty::Str },
    Sig { name: "cast.as_bool", min: 1, max: 1, params: &[S], ret: Ty::Bool },
];

/// Functions of YARA-L that exist but are not evaluated per event: a rule
/// that needs windowed evaluation may use them; any other rule that calls
/// one is refused as unsupported.
pub const KNOWN_ONLY: &[&str] = &[
    "hash.fingerprint2011",
    "hash.sha256",
    "bytes.to_base64",
    "strings.from_hex",
    "strings.from_base64",
    "timestamp.diff",
    "math.geo_distance",
    "math.is_increasing",
    "math.random",
    "arrays.max",
    "arrays.min",
    "window.avg",
    "window.first",
    "window.last",
    "window.median",
    "window.mode",
    "window.stddev",
    "window.variance",
    "window.range",
];

/// Whether `name` is a YARA-L function this engine knows of but does not
/// run. Risk-analytics functions (`metrics.*`) all count.
pub fn known_only(name: &str) -> bool {
    KNOWN_ONLY.contains(&name) || name.starts_with("metrics.")
}

pub fn sig(name: &str) -> Option<&'static Sig> {
    SIGS.iter().find(|s| s.name == name)
}

/// The outcome aggregations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Max,
    Min,
    Sum,
    Count,
    CountDistinct,
    Array,
    ArrayDistinct,
}

impl Agg {
    pub fn from_name(name: &str) -> Option<Agg> {
        Some(match name {
            "max" => Agg::Max,
            "min" => Agg::Min,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            "count_distinct" => Agg::CountDistinct,
            "array" => Agg::Array,
            "array_distinct" => Agg::ArrayDistinct,
            _ => return None,
        })
    }
}

/// A compiled function call, with its constant arguments resolved.
#[derive(Debug)]
pub enum Func {
    Regex(Regex),
    /// The regex and whether it has a capture group to return.
    Capture(Regex, bool),
    Replace(Regex),
    Contains,
    StartsWith,
    EndsWith,
    Lower,
    Upper,
    Concat,
    Coalesce,
    Base64Decode,
    Length,
    Trim(Trim),
    Reverse,
    CountSubstrings,
    ExtractDomain,
    ExtractHostname,
    UrlDecode,
    Split,
    IpInCidr,
    Now,
    Hour(Tz),
    Minute(Tz),
    DayOfWeek(Tz),
    Week(Tz),
    Date(Tz),
    Timestamp(Tz, Box<str>),
    AsUnixSeconds(Tz),
    Abs,
    Round,
    Ceil,
    Floor,
    Log,
    Sqrt,
    Pow,
    ArrLength,
    ArrContains,
    ArrJoin,
    ArrIndex(Ty),
    ArrConcat,
    AsInt,
    AsFloat,
    AsString,
    AsBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    Both,
    Left,
    Right,
}

/// Applies `f` to evaluated arguments. Constant arguments (patterns, zones,
/// formats) are not among `args`; they live in `f`.
pub fn apply<'a>(f: &Func, args: &[Val<'a>], now: i64) -> Val<'a> {
    let text = |i: usize| args.get(i).map(|v| v.text().into_owned()).unwrap_or_default();
    let num = |i: usize| args.get(i).and_then(Val::number).unwrap_or(0.0);
    let list = |i: usize| match args.get(i) {
        Some(Val::List(items)) => items.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    };
    match f {
        Func::Regex(re) => Val::Bool(re.is_match(&text(0))),
        Func::Capture(re, group) => {
            let s = text(0);
            let got = re.captures(&s).and_then(|c| c.get(usize::from(*group))).map(|m| m.as_str());
            Val::Str(got.unwrap_or("").to_string().into())
        }
        Func::Replace(re) => {
            let replacement = re2_replacement(&text(1));
            Val::Str(re.replace_all(&text(0), replacement.as_str()).into_owned().into())
        }
        Func::Contains => Val::Bool(text(0).contains(&text(1))),
        Func::StartsWith => Val::Bool(text(0).starts_with(&text(1))),
        Func::EndsWith => Val::Bool(text(0).ends_with(&text(1))),
        Func::Lower => Val::Str(text(0).to_lowercase().into()),
        Func::Upper => Val::Str(text(0).to_uppercase().into()),
        Func::Concat => Val::Str(args.iter().map(|v| v.text()).collect::<String>().into()),
        Func::Coalesce => {
            let first = args.iter().map(|v| v.text()).find(|t| !t.is_empty());
            Val::Str(first.map(|t| t.into_owned()).unwrap_or_default().into())
        }
        Func::Base64Decode => Val::Str(base64_decode(&text(0)).into()),
        Func::Length => Val::Int(text(0).chars().count() as i64),
        Func::Trim(how) => {
            let s = text(0);
            let cutset = if args.len() > 1 { text(1) } else { " \t\r\n".to_string() };
            let cut = |c: char| cutset.contains(c);
            let out = match how {
                Trim::Both => s.trim_matches(cut),
                Trim::Left => s.trim_start_matches(cut),
                Trim::Right => s.trim_end_matches(cut),
            };
            Val::Str(out.to_string().into())
        }
        Func::Reverse => Val::Str(text(0).chars().rev().collect::<String>().into()),
        Func::CountSubstrings => {
            let (s, sub) = (text(0), text(1));
            Val::Int(if sub.is_empty() { 0 } else { s.matches(sub.as_str()).count() as i64 })
        }
        Func::ExtractHostname => Val::Str(hostname(&text(0)).to_string().into()),
        Func::ExtractDomain => Val::Str(domain(hostname(&text(0))).into()),
        Func::UrlDecode => Val::Str(url_decode(&text(0)).into()),
        Func::Split => {
            let s = text(0);
            let delim = if args.len() > 1 { text(1) } else { ",".to_string() };
            let parts: Vec<Val> = if delim.is_empty() {
                s.chars().map(|c| Val::Str(c.to_string().into())).collect()
            } else {
                s.split(delim.as_str()).map(|p| Val::Str(p.to_string().into())).collect()
            };
            Val::List(parts)
        }
        Func::IpInCidr => Val::Bool(Cidr::parse(&text(1)).is_some_and(|c| c.contains(&text(0)))),
        Func::Now => Val::Int(now),
        Func::Hour(tz) => time_part(args, *tz, |c| c.hour),
        Func::Minute(tz) => time_part(args, *tz, |c| c.minute),
        Func::DayOfWeek(tz) => time_part(args, *tz, |c| c.weekday + 1),
        Func::Week(tz) => time_part(args, *tz, |c| (c.yday + 7 - c.weekday) / 7),
        Func::Date(tz) => match seconds_arg(args) {
            Some(secs) => Val::Str(format_time(&Civil::at(secs, *tz), "%F").into()),
            None => Val::Str("".into()),
        },
        Func::Timestamp(tz, fmt) => match seconds_arg(args) {
            Some(secs) => Val::Str(format_time(&Civil::at(secs, *tz), fmt).into()),
            None => Val::Str("".into()),
        },
        Func::AsUnixSeconds(tz) => {
            let s = text(0);
            let secs = unix_seconds(&s).or_else(|| local_seconds(&s).map(|l| tz.to_utc(l)));
            Val::Int(secs.unwrap_or(0))
        }
        Func::Abs => Val::Float(num(0).abs()),
        Func::Round => {
            let scale = 10f64.powi(num(1) as i32);
            Val::Float((num(0) * scale).round() / scale)
        }
        Func::Ceil => Val::Int(num(0).ceil() as i64),
        Func::Floor => Val::Int(num(0).floor() as i64),
        Func::Log => Val::Float(num(0).ln()),
        Func::Sqrt => Val::Float(num(0).sqrt()),
        Func::Pow => Val::Float(num(0).powf(num(1))),
        Func::ArrLength => Val::Int(list(0).iter().filter(|v| !v.text().is_empty()).count() as i64),
        Func::ArrContains => {
            let needle = text(1);
            Val::Bool(list(0).iter().any(|v| v.text() == needle))
        }
        Func::ArrJoin => {
            let delim = if args.len() > 1 { text(1) } else { String::new() };
            let parts: Vec<String> = list(0).iter().map(|v| v.text().into_owned()).collect();
            Val::Str(parts.join(&delim).into())
        }
        Func::ArrIndex(ty) => {
            let items = list(0);
            let i = args.get(1).and_then(Val::integer).unwrap_or(0);
            let i = if i < 0 { items.len() as i64 + i } else { i };
            let item = usize::try_from(i).ok().and_then(|i| items.get(i));
            match ty {
                Ty::Int => Val::Int(item.and_then(Val::integer).unwrap_or(0)),
                Ty::Float => Val::Float(item.and_then(Val::number).unwrap_or(0.0)),
                _ => Val::Str(item.map(|v| v.text().into_owned()).unwrap_or_default().into()),
            }
        }
        Func::ArrConcat => Val::List(list(0).into_iter().chain(list(1)).collect()),
        Func::AsInt => Val::Int(args.first().and_then(Val::integer).unwrap_or(0)),
        Func::AsFloat => Val::Float(num(0)),
        Func::AsString => Val::Str(text(0).into()),
        Func::AsBool => Val::Bool(args.first().is_some_and(Val::truthy)),
    }
}

/// RE2 writes group references in a replacement as `\1`; the regex crate
/// as `${1}`, with `$` otherwise special.
pub fn re2_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let d = chars.next().unwrap_or('0');
                out.push_str(&format!("${{{d}}}"));
            }
            '\\' if chars.peek() == Some(&'\\') => {
                chars.next();
                out.push('\\');
            }
            c => out.push(c),
        }
    }
    out
}

fn seconds_arg(args: &[Val]) -> Option<i64> {
    let v = args.first()?;
    v.integer().or_else(|| unix_seconds(&v.text()))
}

fn time_part<'a>(args: &[Val<'a>], tz: Tz, part: impl Fn(&Civil) -> i64) -> Val<'a> {
    Val::Int(seconds_arg(args).map_or(0, |secs| part(&Civil::at(secs, tz))))
}

/// A time zone: a fixed offset, or a standard offset with the daylight
/// saving rule of a region. Offsets in seconds east of UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tz {
    Fixed(i64),
    /// North America since 2007: second Sunday of March to first Sunday of
    /// November, at 02:00 local time.
    NorthAmerica(i64),
    /// The European Union: last Sunday of March to last Sunday of October,
    /// at 01:00 UTC.
    Europe(i64),
    /// South-east Australia: first Sunday of October to first Sunday of
    /// April, at 02:00 standard time.
    AustraliaSouth(i64),
}

/// IANA zone names and what they mean today. Zones whose rules differ from
/// these (Israel, Egypt, New Zealand, ...) are not listed and a rule that
/// names one is refused, rather than run with a wrong hour.
const ZONES: &[(&str, Tz)] = &[
    ("UTC", Tz::Fixed(0)),
    ("GMT", Tz::Fixed(0)),
    ("Z", Tz::Fixed(0)),
    ("Etc/UTC", Tz::Fixed(0)),
    ("Etc/GMT", Tz::Fixed(0)),
    ("Universal", Tz::Fixed(0)),
    ("America/New_York", Tz::NorthAmerica(-5 * 3600)),
    ("America/Detroit", Tz::NorthAmerica(-5 * 3600)),
    ("America/Toronto", Tz::NorthAmerica(-5 * 3600)),
    ("US/Eastern", Tz::NorthAmerica(-5 * 3600)),
    ("America/Chicago", Tz::NorthAmerica(-6 * 3600)),
    ("US/Central", Tz::NorthAmerica(-6 * 3600)),
    ("America/Denver", Tz::NorthAmerica(-7 * 3600)),
    ("US/Mountain", Tz::NorthAmerica(-7 * 3600)),
    ("America/Phoenix", Tz::Fixed(-7 * 3600)),
    ("America/Los_Angeles", Tz::NorthAmerica(-8 * 3600)),
    ("US/Pacific", Tz::NorthAmerica(-8 * 3600)),
    ("America/Vancouver", Tz::NorthAmerica(-8 * 3600)),
    ("America/Anchorage", Tz::NorthAmerica(-9 * 3600)),
    ("America/Halifax", Tz::NorthAmerica(-4 * 3600)),
    ("Pacific/Honolulu", Tz::Fixed(-10 * 3600)),
    ("America/Mexico_City", Tz::Fixed(-6 * 3600)),
    ("America/Bogota", Tz::Fixed(-5 * 3600)),
    ("America/Lima", Tz::Fixed(-5 * 3600)),
    ("America/Sao_Paulo", Tz::Fixed(-3 * 3600)),
    ("America/Argentina/Buenos_Aires", Tz::Fixed(-3 * 3600)),
    ("Europe/London", Tz::Europe(0)),
    ("Europe/Dublin", Tz::Europe(0)),
    ("Europe/Lisbon", Tz::Europe(0)),
    ("Europe/Paris", Tz::Europe(3600)),
    ("Europe/Berlin", Tz::Europe(3600)),
    ("Europe/Madrid", Tz::Europe(3600)),
    ("Europe/Rome", Tz::Europe(3600)),
    ("Europe/Amsterdam", Tz::Europe(3600)),
    ("Europe/Brussels", Tz::Europe(3600)),
    ("Europe/Vienna", Tz::Europe(3600)),
    ("Europe/Zurich", Tz::Europe(3600)),
    ("Europe/Stockholm", Tz::Europe(3600)),
    ("Europe/Oslo", Tz::Europe(3600)),
    ("Europe/Copenhagen", Tz::Europe(3600)),
    ("Europe/Warsaw", Tz::Europe(3600)),
    ("Europe/Prague", Tz::Europe(3600)),
    ("Europe/Budapest", Tz::Europe(3600)),
    ("Europe/Athens", Tz::Europe(2 * 3600)),
    ("Europe/Helsinki", Tz::Europe(2 * 3600)),
    ("Europe/Kiev", Tz::Europe(2 * 3600)),
    ("Europe/Kyiv", Tz::Europe(2 * 3600)),
    ("Europe/Bucharest", Tz::Europe(2 * 3600)),
    ("Europe/Sofia", Tz::Europe(2 * 3600)),
    ("Europe/Moscow", Tz::Fixed(3 * 3600)),
    ("Europe/Istanbul", Tz::Fixed(3 * 3600)),
    ("Africa/Lagos", Tz::Fixed(3600)),
    ("Africa/Johannesburg", Tz::Fixed(2 * 3600)),
    ("Africa/Nairobi", Tz::Fixed(3 * 3600)),
    ("Asia/Riyadh", Tz::Fixed(3 * 3600)),
    ("Asia/Tehran", Tz::Fixed(3 * 3600 + 1800)),
    ("Asia/Dubai", Tz::Fixed(4 * 3600)),
    ("Asia/Karachi", Tz::Fixed(5 * 3600)),
    ("Asia/Kolkata", Tz::Fixed(5 * 3600 + 1800)),
    ("Asia/Calcutta", Tz::Fixed(5 * 3600 + 1800)),
    ("Asia/Dhaka", Tz::Fixed(6 * 3600)),
    ("Asia/Bangkok", Tz::Fixed(7 * 3600)),
    ("Asia/Ho_Chi_Minh", Tz::Fixed(7 * 3600)),
    ("Asia/Jakarta", Tz::Fixed(7 * 3600)),
    ("Asia/Shanghai", Tz::Fixed(8 * 3600)),
    ("Asia/Hong_Kong", Tz::Fixed(8 * 3600)),
    ("Asia/Singapore", Tz::Fixed(8 * 3600)),
    ("Asia/Taipei", Tz::Fixed(8 * 3600)),
    ("Asia/Manila", Tz::Fixed(8 * 3600)),
    ("Australia/Perth", Tz::Fixed(8 * 3600)),
    ("Asia/Tokyo", Tz::Fixed(9 * 3600)),
    ("Asia/Seoul", Tz::Fixed(9 * 3600)),
    ("Australia/Brisbane", Tz::Fixed(10 * 3600)),
    ("Australia/Adelaide", Tz::AustraliaSouth(9 * 3600 + 1800)),
    ("Australia/Sydney", Tz::AustraliaSouth(10 * 3600)),
    ("Australia/Melbourne", Tz::AustraliaSouth(10 * 3600)),
    ("Australia/Canberra", Tz::AustraliaSouth(10 * 3600)),
    ("Australia/Hobart", Tz::AustraliaSouth(10 * 3600)),
];

impl Tz {
    /// A zone by IANA name, `UTC`, or a fixed offset (`+05:30`, `-0800`,
    /// `UTC+2`).
    pub fn parse(name: &str) -> Option<Tz> {
        let name = name.trim();
        if let Some((_, tz)) = ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Some(*tz);
        }
        let offset = name.strip_prefix("UTC").or_else(|| name.strip_prefix("GMT")).unwrap_or(name);
        let (sign, rest) = match offset.as_bytes().first()? {
            b'+' => (1, &offset[1..]),
            b'-' => (-1, &offset[1..]),
            _ => return None,
        };
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 14 && m < 60).then_some(Tz::Fixed(sign * (h * 3600 + m * 60)))
    }

    /// The offset from UTC at the instant `utc`, in seconds.
    pub fn offset_at(self, utc: i64) -> i64 {
        let (std, dst) = match self {
            Tz::Fixed(o) => return o,
            Tz::NorthAmerica(o) => {
                let year = Civil::at(utc + o, Tz::Fixed(0)).year;
                // 02:00 local standard time; the end at 02:00 daylight time.
                let start = sunday(year, 3, 2) * 86400 + 2 * 3600 - o;
                let end = sunday(year, 11, 1) * 86400 + 3600 - o;
                (o, (start..end).contains(&utc))
            }
            Tz::Europe(o) => {
                let year = Civil::at(utc, Tz::Fixed(0)).year;
                let start = last_sunday(year, 3) * 86400 + 3600;
                let end = last_sunday(year, 10) * 86400 + 3600;
                (o, (start..end).contains(&utc))
            }
            Tz::AustraliaSouth(o) => {
                let year = Civil::at(utc + o, Tz::Fixed(0)).year;
                let end = sunday(year, 4, 1) * 86400 + 2 * 3600 - o;
                let start = sunday(year, 10, 1) * 86400 + 2 * 3600 - o;
                (o, utc < end || utc >= start)
            }
        };
        if dst {
            std + 3600
        } else {
            std
        }
    }

    /// UTC seconds of a local time in this zone.
    pub fn to_utc(self, local: i64) -> i64 {
        let guess = local - self.offset_at(local);
        local - self.offset_at(guess)
    }
}

/// The day number (days since 1970-01-01) of the `n`th Sunday of a month.
fn sunday(year: i64, month: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    let weekday = (first + 4).rem_euclid(7);
    first + (7 - weekday) % 7 + 7 * (n - 1)
}

fn last_sunday(year: i64, month: i64) -> i64 {
    let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let last = days_from_civil(y, m, 1) - 1;
    last - (last + 4).rem_euclid(7)
}

/// A calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// 0 for Sunday.
    pub weekday: i64,
    /// Day of the year from 0.
    pub yday: i64,
    pub offset: i64,
}

impl Civil {
    pub fn at(utc: i64, tz: Tz) -> Civil {
        let offset = tz.offset_at(utc);
        let local = utc + offset;
        let days = local.div_euclid(86400);
        let secs = local.rem_euclid(86400);
        // Civil from days, after Howard Hinnant's algorithm.
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7),
            yday: days - days_from_civil(year, 1, 1),
            offset,
        }
    }
}

/// `strftime`'s common conversions; others are copied as written.
pub fn format_time(c: &Civil, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", c.year)),
            Some('y') => out.push_str(&format!("{:02}", c.year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{:02}", c.month)),
            Some('d') => out.push_str(&format!("{:02}", c.day)),
            Some('e') => out.push_str(&format!("{:2}", c.day)),
            Some('H') => out.push_str(&format!("{:02}", c.hour)),
            Some('M') => out.push_str(&format!("{:02}", c.minute)),
            Some('S') => out.push_str(&format!("{:02}", c.second)),
            Some('j') => out.push_str(&format!("{:03}", c.yday + 1)),
            Some('F') => out.push_str(&format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)),
            Some('T') => out.push_str(&format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)),
            Some('z') => {
                let sign = if c.offset < 0 { '-' } else { '+' };
                let o = c.offset.abs();
                out.push_str(&format!("{sign}{:02}{:02}", o / 3600, o % 3600 / 60));
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Seconds since the epoch of `YYYY-MM-DD[ HH:MM[:SS]]` read as UTC.
fn local_seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<f64>().ok());
    let (h, min) = (t.next()??, t.next().flatten().unwrap_or(0.0));
    let sec = t.next().flatten().unwrap_or(0.0);
    Some(days_from_civil(y, m, day) * 86400 + h as i64 * 3600 + min as i64 * 60 + sec as i64)
}

fn base64_decode(s: &str) -> String {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let Some(v) = value(c) else { return String::new() };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host of a URL, or the text itself when it is a bare host name.
fn hostname(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host.split(':').next().unwrap_or("")
}

/// The registered domain of a host name. Without the public suffix list,
/// the last two labels, or three when the second-level label is one that
/// country domains register under (`example.co.uk`).
fn domain(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return String::new();
    }
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    const SECOND_LEVEL: [&str; 8] = ["co", "com", "net", "org", "gov", "edu", "ac", "ne"];
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVEL.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: u128,
    prefix: u32,
    v6: bool,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let ip: std::net::IpAddr = addr.parse().ok()?;
        let (bits, v6, max) = match ip {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), false, 32),
            std::net::IpAddr::V6(v6) => (u128::from(v6), true, 128),
        };
        let prefix = if prefix.is_empty() { max } else { prefix.parse().ok()? };
        (prefix <= max).then_some(Cidr { addr: bits, prefix, v6 })
    }

    pub fn contains(&self, ip: &str) -> bool {
        let Some(ip) = crate::source::ip_part(ip.trim()) else { return false };
        let Ok(ip) = ip.parse::<std::net::IpAddr>() else { return false };
        let (bits, max) = match (ip, self.v6) {
            (std::net::IpAddr::V4(v4), false) => (u128::from(u32::from(v4)), 32),
            (std::net::IpAddr::V6(v6), true) => (u128::from(v6), 128),
            (std::net::IpAddr::V6(v6), false) => match v6.to_ipv4_mapped() {
                Some(v4) => (u128::from(u32::from(v4)), 32),
                None => return false,
            },
            _ => return false,
        };
        let shift = max - self.prefix;
        shift >= 128 || (bits >> shift) == (self.addr >> shift)
    }
}

/// Renders an integer-valued float without a fraction, for `strings.concat`.
pub fn number_text(v: f64) -> String {
    float_text(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(utc: i64, zone: &str) -> (i64, i64) {
        let c = Civil::at(utc, Tz::parse(zone).unwrap());
        (c.hour, c.weekday)
    }

    #[test]
    fn zones_follow_daylight_saving() {
        // 2024-07-01T12:00:00Z, a Monday.
        let summer = 1_719_835_200;
        assert_eq!(civil(summer, "UTC"), (12, 1));
        assert_eq!(civil(summer, "America/New_York"), (8, 1));
        assert_eq!(civil(summer, "Europe/Berlin"), (14, 1));
        assert_eq!(civil(summer, "Australia/Sydney"), (22, 1));
        assert_eq!(civil(summer, "+05:30").0, 17);
        // 2024-01-15T12:00:00Z
        let winter = 1_705_320_000;
        assert_eq!(civil(winter, "America/New_York").0, 7);
        assert_eq!(civil(winter, "Europe/Berlin").0, 13);
        assert_eq!(civil(winter, "Australia/Sydney").0, 23);
        assert_eq!(Tz::parse("Mars/Olympus"), None);
    }

    #[test]
    fn formats_and_dates() {
        let c = Civil::at(1_719_835_200, Tz::Fixed(0));
        assert_eq!(format_time(&c, "%F %T"), "2024-07-01 12:00:00");
        assert_eq!((c.year, c.month, c.day, c.yday), (2024, 7, 1, 182));
        assert_eq!(local_seconds("2024-07-01 12:00:00"), Some(1_719_835_200));
    }

    #[test]
    fn strings_and_networks() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), "hello world");
        assert_eq!(base64_decode("aGVsbG8"), "hello");
        assert_eq!(base64_decode("!!"), "");
        assert_eq!(url_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(hostname("https://user@www.example.co.uk:8443/x?y"), "www.example.co.uk");
        assert_eq!(domain("www.example.co.uk"), "example.co.uk");
        assert_eq!(domain("a.b.example.com"), "example.com");
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3") && !net.contains("11.0.0.1") && !net.contains("x"));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8::1"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8"));
        assert_eq!(re2_replacement(r"\1-$x"), "${1}-$$x");
    }
}
