//! Rule evaluation cases kept as data in `tests/rules/`.
//!
//! A case is three files that share a name:
//!
//! - `NAME.yaral`: one or more rules;
//! - `NAME.events.ndjson`: one JSON event per line;
//! - `NAME.expected.tsv`: one row per event line, in order. The columns are
//!   the event's line number, the names of the rules that must match it,
//!   separated by commas (`-` for none), and an optional note. Blank lines
//!   and lines that start with `#` are skipped.
//!
//! Two more files are optional:
//!
//! - `NAME.lists/LIST.txt`: the reference list `%LIST`, one entry a line;
//! - `NAME.tags.expected`: for each event some rule matched, its line
//!   number, a tab, and the tag Tripline appends (`"detections":[...]`),
//!   which shows placeholder and outcome values. `TRIPLINE_BLESS=1` writes
//!   it; read every rewritten file before keeping it.
//!
//! Events are evaluated at [`NOW`], which `timestamp.current_seconds()`
//! returns.
//!
//! A case that shows an engine bug also has a `NAME.bug` file saying what
//! is wrong. It is left out of `rule_cases_match_their_expectations` and run
//! by the ignored `rule_cases_showing_engine_bugs`, which passes once the
//! bug is fixed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tripline_engine::diag::Source;
use tripline_engine::lists::parse_entries;
use tripline_engine::tag::Tagger;
use tripline_engine::{Engine, Match, RefList};

/// The evaluation time of every case: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn blessing() -> bool {
    std::env::var("TRIPLINE_BLESS").is_ok_and(|v| v == "1")
}

/// The case's reference lists, from `NAME.lists/`.
fn lists(case: &Case) -> Vec<RefList> {
    let dir = case.dir.join(format!("{}.lists", case.name));
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<RefList> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".txt")?.to_string();
            Some(RefList { name, entries: parse_entries(&read(&path)) })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("rules")
}

struct Case {
    name: String,
    dir: PathBuf,
    /// The reason in `NAME.bug`, if the case shows an engine bug.
    bug: Option<String>,
}

impl Case {
    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.name))
    }

    /// The path to show in messages, relative to the crate.
    fn shown(&self, suffix: &str) -> String {
        format!("tests/rules/{}{suffix}", self.name)
    }
}

/// Every `NAME.yaral` in the folder, by name.
fn cases() -> Vec<Case> {
    let dir = cases_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut out: Vec<Case> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter_map(|path| {
            let file = path.file_name()?.to_str()?;
            let name = file.strip_suffix(".yaral")?.to_string();
            let bug = fs::read_to_string(dir.join(format!("{name}.bug"))).ok();
            Some(Case { name, dir: dir.clone(), bug })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One row of `NAME.expected.tsv`.
struct Expectation {
    /// The row's line in the `.tsv` file, from 1.
    tsv_line: usize,
    /// The event line it is about, from 1.
    event_line: usize,
    rules: BTreeSet<String>,
}

fn expectations(case: &Case, problems: &mut Vec<String>) -> Vec<Expectation> {
    let text = read(&case.file(".expected.tsv"));
    let mut out = Vec::new();
    for (i, row) in text.lines().enumerate() {
        let tsv_line = i + 1;
        let at = format!("{}:{tsv_line}", case.shown(".expected.tsv"));
        if row.trim().is_empty() || row.starts_with('#') {
            continue;
        }
        let mut cols = row.split('\t');
        let (Some(num), Some(names)) = (cols.next(), cols.next()) else {
            problems.push(format!("{at}: expected `line<TAB>rules[<TAB>note]`, found {row:?}"));
            continue;
        };
        let Ok(event_line) = num.trim().parse::<usize>() else {
            problems.push(format!("{at}: expected an event line number, found {num:?}"));
            continue;
        };
        let names = names.trim();
        let rules = if names == "-" {
            BTreeSet::new()
        } else {
            names.split(',').map(|n| n.trim().to_string()).collect()
        };
        if names.is_empty() || rules.iter().any(String::is_empty) {
            problems.push(format!("{at}: expected rule names or `-`, found {names:?}"));
            continue;
        }
        out.push(Expectation { tsv_line, event_line, rules });
    }
    out
}

/// Runs one case and returns how many events it checked, or what went
/// wrong, each problem with its file and line.
fn run_case(case: &Case) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let rules_text = read(&case.file(".yaral"));
    let file_name = format!("{}.yaral", case.name);
    let sources = [Source { name: &file_name, text: &rules_text }];
    let engine = match Engine::load_with_lists(&sources, &lists(case)) {
        Ok(engine) => engine,
        Err(errors) => {
            let rendered: String =
                errors.iter().map(|e| sources[e.source].render(&e.diag)).collect();
            return Err(vec![format!(
                "{}: expected the rules to load, found:\n{rendered}",
                case.shown(".yaral")
            )]);
        }
    };
    let rule_names: BTreeSet<String> = engine.rules().iter().map(|r| r.name.clone()).collect();

    let events_text = read(&case.file(".events.ndjson"));
    let events: Vec<&str> = events_text.lines().collect();
    let expected = expectations(case, &mut problems);

    // One row per event, in order, naming only rules of the case.
    let numbers: Vec<usize> = expected.iter().map(|x| x.event_line).collect();
    let wanted: Vec<usize> = (1..=events.len()).collect();
    if numbers != wanted {
        problems.push(format!(
            "{}: expected one row per event line, for lines {wanted:?} in order, found rows \
             for {numbers:?}",
            case.shown(".expected.tsv")
        ));
    }
    if events.is_empty() {
        problems.push(format!("{}: expected at least one event", case.shown(".events.ndjson")));
    }
    for x in &expected {
        for unknown in x.rules.difference(&rule_names) {
            problems.push(format!(
                "{}:{}: no rule `{unknown}` in {} (rules: {rule_names:?})",
                case.shown(".expected.tsv"),
                x.tsv_line,
                case.shown(".yaral")
            ));
        }
    }

    // The same rules evaluated on every event: the prefilter must not
    // change a verdict.
    let mut unfiltered = Engine::load_with_lists(&sources, &lists(case)).expect("loaded above");
    unfiltered.set_prefilter(false);
    let mut unfiltered_matches: Vec<Match> = Vec::new();

    let mut scratch = engine.scratch();
    scratch.set_now(NOW);
    let mut matches: Vec<Match> = Vec::new();
    let mut checked = 0;
    let tagger = Tagger::new("detections", engine.rules());
    let mut tags = String::new();
    for x in &expected {
        let Some(event) = events.get(x.event_line - 1) else { continue };
        let at = format!("{}:{}", case.shown(".events.ndjson"), x.event_line);
        matches.clear();
        if let Err(e) = engine.evaluate(event.as_bytes(), &mut scratch, &mut matches) {
            problems.push(format!("{at}: expected a valid event, found error: {e}\n  {event}"));
            continue;
        }
        unfiltered_matches.clear();
        let _ = unfiltered.evaluate(event.as_bytes(), &mut scratch, &mut unfiltered_matches);
        if unfiltered_matches != matches {
            problems.push(format!("{at}: the prefilter changed the verdict\n  {event}"));
        }
        let got: Vec<String> =
            matches.iter().map(|m| engine.rules()[m.rule as usize].name.clone()).collect();
        let got_set: BTreeSet<String> = got.iter().cloned().collect();
        if got_set.len() != got.len() {
            problems.push(format!("{at}: a rule matched twice: {got:?}"));
        }
        if !matches.is_empty() {
            let mut out = Vec::new();
            tagger.tag(b"{}", &matches, &mut out);
            let tag = String::from_utf8_lossy(&out);
            let tag = tag.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(&tag);
            tags.push_str(&format!("{}\t{tag}\n", x.event_line));
        }
        if got_set != x.rules {
            let show = |s: &BTreeSet<String>| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.iter().cloned().collect::<Vec<_>>().join(",")
                }
            };
            problems.push(format!(
                "{at}: expected {} (per {}:{}), matched {}\n  {event}",
                show(&x.rules),
                case.shown(".expected.tsv"),
                x.tsv_line,
                show(&got_set),
            ));
        }
        checked += 1;
    }
    let tags_file = case.file(".tags.expected");
    if blessing() && tags_file.exists() {
        fs::write(&tags_file, &tags).unwrap_or_else(|e| panic!("writing tags: {e}"));
    } else if let Ok(expected) = fs::read_to_string(&tags_file) {
        if expected != tags {
            problems.push(format!(
                "{}: tags differ; expected:\n{expected}actual:\n{tags}",
                case.shown(".tags.expected")
            ));
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

#[test]
fn rule_cases_match_their_expectations() {
    let all = cases();
    assert!(!all.is_empty(), "no NAME.yaral cases in {}", cases_dir().display());
    let mut problems = Vec::new();
    let mut ran = 0;
    let mut events = 0;
    for case in all.iter().filter(|c| c.bug.is_none()) {
        match run_case(case) {
            Ok(n) => {
                ran += 1;
                events += n;
            }
            Err(p) => problems.extend(p),
        }
    }
    assert!(ran > 0 || !problems.is_empty(), "every case in tests/rules is marked as a bug");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    eprintln!("{ran} rule cases, {events} events");
}

#[test]
#[ignore = "cases with a NAME.bug file show engine bugs; this passes once they are fixed"]
fn rule_cases_showing_engine_bugs() {
    let mut problems = Vec::new();
    for case in cases().iter().filter(|c| c.bug.is_some()) {
        if let Err(p) = run_case(case) {
            let bug = case.bug.as_deref().unwrap_or("").trim();
            problems.push(format!("{} ({bug}):\n{}", case.shown(".yaral"), p.join("\n")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
