//! The VRL peer benchmark: the T1059.009 detection written in Vector's
//! Remap Language, run through the `vrl` crate the way a Vector pipeline
//! runs it, beside the plain native filter on the same events in the same
//! process. See README.md for what is measured and why.
//!
//! ```text
//! tripline-vrl-bench [--seconds N] EVENTS.ndjson
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vrl::compiler::runtime::Runtime;
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::{Secrets, Value};

// The baseline is the very file the other benchmarks build, so that every
// figure in the peer table is a ratio to the same code.
#[path = "../../src/plain.rs"]
mod plain;

/// The rule name the tag carries, as in the component's tags.
const RULE: &str = "cloud_api_abuse_t1059_009";

const USAGE: &str = "usage: tripline-vrl-bench [--seconds N] EVENTS.ndjson";

/// The detection as a VRL program for a `remap` transform. Its value says
/// whether it tagged the event; Vector ignores a program's value, so this
/// costs the comparison nothing and lets the bench count tags without
/// searching the output.
///
/// `is_string(.eventSource)` rather than `exists(.eventSource)`: the engine
/// and the plain filter both take a record as CloudTrail only when the
/// field is a string, and `exists` is also true of `null`.
fn vrl_source() -> String {
    let pattern = plain::action_pattern();
    // A raw VRL string has no escapes, so a quote would end it early.
    assert!(!pattern.contains('\''), "the pattern fits in a raw VRL string");
    format!(
        r#"if is_string(.eventSource) && match(string(.eventName) ?? "", r'{pattern}') {{
    .detections = [{{
        "rule": "{RULE}",
        "variables": {{"src_ip": .sourceIPAddress, "actor": .userIdentity.arn}}
    }}]
    true
}} else {{
    false
}}
"#
    )
}

/// A `remap` transform between a source with the JSON codec and a sink
/// with the JSON encoder, over NDJSON bytes in and out.
struct VrlFilter {
    program: Program,
    runtime: Runtime,
    timezone: TimeZone,
}

impl VrlFilter {
    fn new() -> Result<VrlFilter, String> {
        let source = vrl_source();
        let compiled = vrl::compiler::compile(&source, &vrl::stdlib::all())
            .map_err(|d| format!("the VRL program does not compile: {d:?}"))?;
        if !compiled.warnings.is_empty() {
            eprintln!("tripline-vrl-bench: VRL warnings: {:?}", compiled.warnings);
        }
        let info = compiled.program.info();
        // An infallible, non-aborting program cannot end in an error, which
        // is what lets `line` treat one as a bug rather than an event.
        if info.fallible || info.abortable {
            return Err("the VRL program can fail or abort at run time".into());
        }
        Ok(VrlFilter {
            program: compiled.program,
            runtime: Runtime::default(),
            timezone: TimeZone::default(),
        })
    }

    /// Filters NDJSON `events` into `out`, replacing what it held, and
    /// returns how many events it tagged; the same contract as
    /// `plain::PlainFilter::run`.
    fn run(&mut self, events: &[u8], out: &mut Vec<u8>) -> usize {
        plain::filter_lines(events, out, |line, out| self.line(line, out))
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        // Vector's JSON decoder parses into `serde_json::Value` and then
        // converts that into an event; both steps are part of its cost.
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(line) else {
            // Vector would drop the line and log an error; forwarding it as
            // the plain filter does keeps the outputs the same length.
            out.extend_from_slice(line);
            return false;
        };
        let value = Value::from(json);
        if !value.is_object() {
            out.extend_from_slice(line);
            return false;
        }
        let mut target = TargetValue {
            value,
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let result = self
            .runtime
            .resolve(&mut target, &self.program, &self.timezone)
            .expect("an infallible program resolves");
        // The remap transform clears the runtime's variables between events.
        self.runtime.clear();
        // The sink's JSON encoder serializes the whole event, tagged or not.
        serde_json::to_writer(&mut *out, &target.value).expect("a VRL value encodes");
        result == Value::Boolean(true)
    }
}

/// The passes one filter made over the events and the time they took.
struct Meter {
    out: Vec<u8>,
    tagged: usize,
    passes: u64,
    elapsed: Duration,
}

impl Meter {
    /// Makes one pass outside the clock, which grows the output buffer and
    /// warms the caches, so that the timed passes measure the steady state
    /// a long-running pipeline is in.
    fn new(run: &mut impl FnMut(&mut Vec<u8>) -> usize) -> Meter {
        let mut out = Vec::new();
        let tagged = run(&mut out);
        Meter { out, tagged, passes: 0, elapsed: Duration::ZERO }
    }

    /// Repeats `run` for at least `budget`, and at least once.
    fn slice(&mut self, budget: Duration, run: &mut impl FnMut(&mut Vec<u8>) -> usize) {
        let start = Instant::now();
        let mut passes = 0;
        while passes == 0 || start.elapsed() < budget {
            let tagged = run(&mut self.out);
            assert_eq!(tagged, self.tagged, "every pass tags the same events");
            black_box(&self.out);
            passes += 1;
        }
        self.elapsed += start.elapsed();
        self.passes += passes;
    }

    fn events_per_second(&self, count: usize) -> f64 {
        self.passes as f64 * count as f64 / self.elapsed.as_secs_f64()
    }
}

/// How long each filter runs before the other takes a turn. The machine
/// this runs on is shared, so its speed drifts over seconds; turns this
/// short give both filters the same share of every drift, which keeps the
/// ratio steady even when the absolute figures are not.
const TURN: Duration = Duration::from_millis(250);

/// Runs the two filters in alternating turns until each has run for
/// `seconds`, and returns their meters.
fn measure(
    seconds: f64,
    mut plain: impl FnMut(&mut Vec<u8>) -> usize,
    mut vrl: impl FnMut(&mut Vec<u8>) -> usize,
) -> (Meter, Meter) {
    let total = Duration::from_secs_f64(seconds);
    let turns = (total.as_secs_f64() / TURN.as_secs_f64()).ceil().max(1.0) as u32;
    let turn = total / turns;
    let (mut plain_meter, mut vrl_meter) = (Meter::new(&mut plain), Meter::new(&mut vrl));
    for _ in 0..turns {
        plain_meter.slice(turn, &mut plain);
        vrl_meter.slice(turn, &mut vrl);
    }
    (plain_meter, vrl_meter)
}

fn parse_args() -> Result<(String, f64), String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut seconds = 3.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a value")?;
                seconds = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--seconds: not a positive number: {value}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if path.is_some() => return Err("only one events file".into()),
            _ => path = Some(arg),
        }
    }
    Ok((path.ok_or("an events file is needed")?, seconds))
}

fn main() -> ExitCode {
    let (path, seconds) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("tripline-vrl-bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let events = match std::fs::read(&path) {
        Ok(events) => events,
        Err(e) => {
            eprintln!("tripline-vrl-bench: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let count = events.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    if count == 0 {
        eprintln!("tripline-vrl-bench: {path}: no events");
        return ExitCode::FAILURE;
    }
    let mut vrl = match VrlFilter::new() {
        Ok(vrl) => vrl,
        Err(message) => {
            eprintln!("tripline-vrl-bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    let plain = plain::PlainFilter::new();

    // Event by event before the clock starts, so that a disagreement names
    // the line rather than only changing a total.
    let (mut plain_out, mut vrl_out) = (Vec::new(), Vec::new());
    let lines = events.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    for (number, line) in lines.enumerate() {
        let plain_hit = plain.run(line, &mut plain_out);
        let vrl_hit = vrl.run(line, &mut vrl_out);
        if plain_hit != vrl_hit {
            let number = number + 1;
            eprintln!(
                "tripline-vrl-bench: {path}: event {number}: tagged {plain_hit} by the plain \
                 filter, {vrl_hit} by VRL"
            );
            return ExitCode::FAILURE;
        }
    }

    let (plain_meter, vrl_meter) =
        measure(seconds, |out| plain.run(&events, out), |out| vrl.run(&events, out));
    let plain_tagged = plain_meter.tagged;
    assert_eq!(
        vrl_meter.tagged, plain_tagged,
        "VRL and the plain filter tag the same number of events"
    );
    let plain_eps = plain_meter.events_per_second(count);
    let vrl_eps = vrl_meter.events_per_second(count);
    let ratio = vrl_eps / plain_eps;

    println!("{path}: {count} events, {} bytes, {plain_tagged} tagged", events.len());
    println!("{:<14} {:>14} {:>8}", "filter", "events/s", "ratio");
    println!("{:<14} {:>14.0} {:>8.3}", "plain_filter", plain_eps, 1.0);
    println!("{:<14} {:>14.0} {:>8.3}", "vrl", vrl_eps, ratio);
    println!("RESULT plain_filter_eps={plain_eps:.0} vrl_eps={vrl_eps:.0} ratio={ratio:.4}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(events: &str) -> (usize, usize, String) {
        let mut out = Vec::new();
        let plain = plain::PlainFilter::new().run(events.as_bytes(), &mut out);
        let vrl = VrlFilter::new().unwrap().run(events.as_bytes(), &mut out);
        (plain, vrl, String::from_utf8(out).unwrap())
    }

    #[test]
    fn tags_a_matching_record_with_the_rule_and_its_variables() {
        let line = r#"{"eventSource":"iam.amazonaws.com","eventName":"createuser","#.to_owned()
            + r#""sourceIPAddress":"198.51.100.23","userIdentity":{"arn":"arn:aws:iam::1:u/a"}}"#;
        let (plain, vrl, out) = both(&(line + "\n"));
        assert_eq!((plain, vrl), (1, 1));
        let event: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        let expected = serde_json::json!([{
            "rule": RULE,
            "variables": {"src_ip": "198.51.100.23", "actor": "arn:aws:iam::1:u/a"}
        }]);
        assert_eq!(event["detections"], expected);
        assert_eq!(event["eventName"], "createuser");
    }

    #[test]
    fn agrees_with_the_plain_filter_on_records_it_does_not_tag() {
        let events = concat!(
            r#"{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances"}"#,
            "\n",
            r#"{"eventName":"CreateUser"}"#,
            "\n",
            r#"{"eventSource":null,"eventName":"CreateUser"}"#,
            "\n",
            r#"{"eventSource":"iam.amazonaws.com","eventName":7}"#,
            "\n\n",
            "not json\n",
            "[1,2]\n",
        );
        let (plain, vrl, out) = both(events);
        assert_eq!((plain, vrl), (0, 0));
        assert!(!out.contains("detections"));
        // One line out for each non-empty line in, malformed ones as they were.
        assert_eq!(out.lines().count(), 6);
        assert!(out.contains("\nnot json\n[1,2]\n"));
    }
}
