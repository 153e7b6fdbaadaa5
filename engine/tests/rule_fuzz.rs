//! A deterministic fuzz test of the YARA-L front end, for stable Rust.
//!
//! Rules are generated from the grammar's pieces (sections, fields with
//! keys and indexes, every operator, functions, lists, regexes, nesting),
//! then mutated: tokens dropped, repeated or swapped, bytes inserted, the
//! text cut short. Every text is loaded with a reference list; loading must
//! return rules or diagnostics and never panic, every diagnostic must
//! render, and every rule that loads must evaluate sample events without
//! panicking. `fuzz/` holds the libFuzzer target for the same property.
//!
//! `TRIPLINE_FUZZ_SEED` and `TRIPLINE_FUZZ_CASES` change the seed and the
//! number of texts.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tripline_engine::diag::Source;
use tripline_engine::{Engine, RefList};

/// xorshift64*: small, fast and good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const FIELDS: &[&str] = &[
    "$e.metadata.event_type",
    "$e.metadata.product_event_type",
    "$e.principal.ip",
    "$e.principal.hostname",
    "$e.target.port",
    "$e.principal.user.userid",
    "$e.target.resource.attribute.labels[\"k\"]",
    "$e.additional.fields[\"a\"]",
    "$e.security_result[0].severity",
    "$e.metadata.event_timestamp.seconds",
    "$e.about.labels.value",
    "$e2.principal.ip",
    "$e.nothing.here",
];

const VALUES: &[&str] = &[
    "\"USER_LOGIN\"",
    "\"10.0.0.1\"",
    "443",
    "-1",
    "1.5",
    "true",
    "USER_LOGIN",
    "`a.*b`",
    "/a\\/b{2}/",
    "/[/",
    "\"\\q\"",
    "$p",
    "$q",
    "#e",
    "$risk",
];

const FUNCTIONS: &[&str] = &[
    "re.regex",
    "re.capture",
    "re.replace",
    "strings.to_lower",
    "strings.concat",
    "strings.coalesce",
    "strings.contains",
    "strings.base64_decode",
    "net.ip_in_range_cidr",
    "timestamp.get_hour",
    "timestamp.current_seconds",
    "arrays.length",
    "math.abs",
    "max",
    "count_distinct",
    "array_distinct",
    "if",
    "hash.sha256",
    "no.such",
];

const OPS: &[&str] = &["=", "!=", "<", "<=", ">", ">=", "in", "not in", "in regex", "in cidr"];

fn operand(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth > 3 { 2 } else { 5 }) {
        0 => rng.pick(FIELDS).to_string(),
        1 => rng.pick(VALUES).to_string(),
        2 => {
            let args: Vec<String> = (0..rng.below(4)).map(|_| operand(rng, depth + 1)).collect();
            format!("{}({})", rng.pick(FUNCTIONS), args.join(", "))
        }
        3 => format!(
            "{} {} {}",
            operand(rng, depth + 1),
            rng.pick(&["+", "-", "*", "/"]),
            operand(rng, depth + 1)
        ),
        _ => format!("{} {}", rng.pick(&["any", "all"]), rng.pick(FIELDS)),
    }
}

/// Predicates that load, so that enough generated rules get as far as
/// evaluation.
const GOOD: &[&str] = &[
    "$e.metadata.event_type = \"USER_LOGIN\"",
    "$e.principal.ip = $p",
    "re.regex($e.principal.hostname, `^a`) nocase",
    "$e.target.port > 100",
    "not $e.principal.ip in cidr %l",
    "$e.target.resource.attribute.labels[\"k\"] = /v/",
    "strings.to_lower($e.principal.hostname) != \"x\"",
    "any $e.principal.ip = \"8.8.8.8\"",
    "$e.metadata.event_timestamp.seconds < timestamp.current_seconds()",
];

fn predicate(rng: &mut Rng, depth: usize) -> String {
    if rng.chance(55) {
        return rng.pick(GOOD).to_string();
    }
    match rng.below(if depth > 3 { 2 } else { 5 }) {
        0 | 1 => {
            let op = rng.pick(OPS);
            let rhs = if op.contains("in") { "%l".to_string() } else { operand(rng, depth) };
            let nocase = if rng.chance(15) { " nocase" } else { "" };
            format!("{} {op} {rhs}{nocase}", operand(rng, depth))
        }
        2 => format!("not {}", predicate(rng, depth + 1)),
        3 => format!(
            "({} {} {})",
            predicate(rng, depth + 1),
            rng.pick(&["and", "or", "AND", "OR"]),
            predicate(rng, depth + 1)
        ),
        _ => format!("{} = $p", rng.pick(FIELDS)),
    }
}

fn rule(rng: &mut Rng, n: usize) -> String {
    let mut out = format!("rule r{n} {{\n  meta:\n    severity = \"HIGH\"\n  events:\n");
    for _ in 0..1 + rng.below(4) {
        out.push_str(&format!("    {}\n", predicate(rng, 0)));
    }
    if rng.chance(30) {
        out.push_str("  match:\n    $p over 5m\n");
    }
    let outcome = if rng.chance(50) { "max(10 + 5)".to_string() } else { operand(rng, 1) };
    out.push_str(&format!("  outcome:\n    $risk = {outcome}\n"));
    let condition =
        if rng.chance(60) { "$e" } else { rng.pick(&["#e > 2", "$e and $risk > 1", "!$e2", "$x"]) };
    out.push_str(&format!("  condition:\n    {condition}\n"));
    if rng.chance(10) {
        out.push_str("  options:\n    allow_zero_values = true\n");
    }
    out.push_str("}\n");
    out
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    for _ in 0..rng.below(4) {
        if words.is_empty() {
            break;
        }
        let i = rng.below(words.len());
        match rng.below(5) {
            0 => {
                words.remove(i);
            }
            1 => words.insert(i, words[i].clone()),
            2 => {
                let j = rng.below(words.len());
                words.swap(i, j);
            }
            3 => words[i].push_str(rng.pick(&["(", ")", "\"", "`", "/", "[", "]", "$", "%", "{"])),
            _ => {
                words[i] =
                    rng.pick(&["rule", "events:", "condition:", "é", "\u{0}", "//", "/*"]).into()
            }
        }
    }
    let mut out = words.join(" ");
    if rng.chance(10) {
        let cut = rng.below(out.len() + 1);
        let cut = (0..=cut).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
        out.truncate(cut);
    }
    out
}

const EVENTS: &[&str] = &[
    concat!(
        r#"{"metadata":{"event_type":"USER_LOGIN","event_timestamp":"2024-01-01T00:00:00Z"},"#,
        r#""principal":{"ip":["10.0.0.1","8.8.8.8"],"hostname":"a.b"},"target":{"port":443,"#,
        r#""resource":{"attribute":{"labels":[{"key":"k","value":"v"}]}}},"#,
        r#""security_result":[{"severity":"HIGH"}]}"#,
    ),
    concat!(
        r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","#,
        r#""sourceIPAddress":"198.51.100.1"}"#,
    ),
    r#"{"metadata":{},"additional":{"a":"x"},"about":[{"labels":[{"key":"k","value":"v"}]}]}"#,
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn generated_rules_never_panic() {
    let seed = env_or("TRIPLINE_FUZZ_SEED", 0x5eed_7269_706c_696e);
    let cases = env_or("TRIPLINE_FUZZ_CASES", 2000) as usize;
    let mut rng = Rng(seed.max(1));
    let lists = [RefList { name: "l".into(), entries: vec!["a".into(), "10.0.0.0/8".into()] }];
    let (mut loaded, mut refused) = (0, 0);
    for n in 0..cases {
        let count = if rng.chance(70) { 1 } else { 2 + rng.below(5) };
        let mut text: String = (0..count).map(|i| rule(&mut rng, n * 4 + i)).collect();
        if rng.chance(40) {
            text = mutate(&mut rng, &text);
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            let sources = [Source { name: "gen.yaral", text: &text }];
            match Engine::load_with_lists(&sources, &lists) {
                Ok(engine) => {
                    // The prefilter may skip rules, never change a verdict.
                    let mut unfiltered = Engine::load_with_lists(&sources, &lists).unwrap();
                    unfiltered.set_prefilter(false);
                    let mut scratch = engine.scratch();
                    scratch.set_now(1_700_000_000);
                    let (mut out, mut all) = (Vec::new(), Vec::new());
                    for event in EVENTS {
                        out.clear();
                        all.clear();
                        engine.evaluate(event.as_bytes(), &mut scratch, &mut out).unwrap();
                        unfiltered.evaluate(event.as_bytes(), &mut scratch, &mut all).unwrap();
                        assert_eq!(out, all, "the prefilter changed a verdict on {event}");
                    }
                    true
                }
                Err(errors) => {
                    assert!(!errors.is_empty());
                    for e in &errors {
                        assert!(!sources[e.source].render(&e.diag).is_empty());
                    }
                    false
                }
            }
        }));
        match result {
            Ok(true) => loaded += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("seed {seed:#x}, case {n} panicked on:\n{text}"),
        }
    }
    // Both outcomes must be common, or the generator tests too little.
    assert!(loaded > cases / 20 && refused > cases / 20, "loaded {loaded}, refused {refused}");
    eprintln!("{cases} generated sources: {loaded} loaded, {refused} refused, no panic");
}
