//! Golden tests for diagnostics, kept as data in `tests/diagnostics/`.
//!
//! Each `NAME.yaral` holds one or more errors. `NAME.expected` holds what
//! loading it renders: for each `LoadError`, in order,
//! `sources[e.source].render(&e.diag)` followed by a blank line. The source
//! is named `NAME.yaral` in the rendering.
//!
//! With `TRIPLINE_BLESS=1` the test writes the `.expected` files instead of
//! comparing. Read every rewritten file before keeping it.
//!
//! A case that shows an engine bug also has a `NAME.bug` file saying what
//! is wrong; its `.expected` holds the right output, written by hand, and
//! blessing leaves it alone. Such cases are left out of
//! `diagnostics_match_golden_files` and run by the ignored
//! `diagnostics_showing_engine_bugs`, which passes once the bug is fixed.

use std::fs;
use std::path::{Path, PathBuf};

use tripline_engine::diag::{Code, Source};
use tripline_engine::syntax::parser::MAX_DEPTH;
use tripline_engine::Engine;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("diagnostics")
}

fn blessing() -> bool {
    std::env::var("TRIPLINE_BLESS").is_ok_and(|v| v == "1")
}

struct Case {
    name: String,
    path: PathBuf,
    expected: PathBuf,
    bug: Option<String>,
}

fn cases() -> Vec<Case> {
    let dir = cases_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut out: Vec<Case> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_suffix(".yaral")?.to_string();
            let expected = dir.join(format!("{name}.expected"));
            let bug = fs::read_to_string(dir.join(format!("{name}.bug"))).ok();
            Some(Case { name, path, expected, bug })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What loading `text` as `name` renders, or `None` if it loads.
fn render(name: &str, text: &str) -> Option<String> {
    let sources = [Source { name, text }];
    let errors = Engine::load(&sources).err()?;
    let mut out = String::new();
    for e in &errors {
        out.push_str(&sources[e.source].render(&e.diag));
        out.push('\n');
    }
    Some(out)
}

/// Checks one case against its golden file, or writes the file when
/// blessing. Returns what is wrong.
fn check(case: &Case, bless: bool) -> Result<(), String> {
    let text = fs::read_to_string(&case.path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", case.path.display()));
    let file_name = format!("{}.yaral", case.name);
    let shown = format!("tests/diagnostics/{file_name}");
    let Some(actual) = render(&file_name, &text) else {
        return Err(format!("{shown}: expected errors, but the rules loaded"));
    };
    if bless {
        fs::write(&case.expected, &actual)
            .unwrap_or_else(|e| panic!("writing {}: {e}", case.expected.display()));
        return Ok(());
    }
    let expected = fs::read_to_string(&case.expected).map_err(|e| {
        format!("{shown}: no golden file {} ({e}); run with TRIPLINE_BLESS=1", case.name)
    })?;
    if actual == expected {
        return Ok(());
    }
    Err(format!(
        "{shown}: rendered diagnostics differ from tests/diagnostics/{}.expected\n{}",
        case.name,
        diff(&expected, &actual)
    ))
}

/// A line-by-line comparison: the first differing line, with both texts.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = (0..e.len().max(a.len())).find(|&i| e.get(i) != a.get(i)).unwrap_or(0);
    let (ex, ac) = (e.get(first), a.get(first));
    format!(
        "first difference at line {}:\n  expected: {ex:?}\n  actual:   {ac:?}\n\
         --- expected\n{expected}--- actual\n{actual}",
        first + 1,
    )
}

#[test]
fn diagnostics_match_golden_files() {
    let all = cases();
    assert!(!all.is_empty(), "no NAME.yaral cases in {}", cases_dir().display());
    let bless = blessing();
    let mut problems = Vec::new();
    for case in &all {
        if case.bug.is_some() {
            continue;
        }
        if let Err(p) = check(case, bless) {
            problems.push(p);
        }
    }
    assert!(problems.is_empty(), "{} case(s) failed:\n\n{}", problems.len(), problems.join("\n"));
}

#[test]
#[ignore = "cases with a NAME.bug file show engine bugs; this passes once they are fixed"]
fn diagnostics_showing_engine_bugs() {
    let mut problems = Vec::new();
    for case in cases().iter().filter(|c| c.bug.is_some()) {
        if let Err(p) = check(case, false) {
            let bug = case.bug.as_deref().unwrap_or("").trim();
            problems.push(format!("engine bug: {bug}\n{p}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A rule with one line of events and the condition `$e`.
fn rule_text(name: &str, events: &str) -> String {
    format!("rule {name} {{\n  events:\n    {events}\n  condition:\n    $e\n}}\n")
}

/// A rule whose events hold one comparison inside `parens` parentheses.
fn nested_rule(name: &str, parens: usize) -> String {
    let (open, close) = ("(".repeat(parens), ")".repeat(parens));
    rule_text(name, &format!("{open}$e.principal.hostname = \"a\"{close}"))
}

/// The events section is one level, and each parenthesis one more.
#[test]
fn nesting_limit_is_exact() {
    let deepest = MAX_DEPTH as usize - 1;
    let ok = nested_rule("deepest_allowed", deepest);
    assert_eq!(render("ok.yaral", &ok), None, "{deepest} parentheses must load");

    let too_deep = nested_rule("too_deep", deepest + 1);
    let sources = [Source { name: "deep.yaral", text: &too_deep }];
    let errors = Engine::load(&sources).expect_err("one parenthesis more must fail");
    let codes: Vec<Code> = errors.iter().map(|e| e.diag.code).collect();
    assert_eq!(codes, [Code::TooDeep]);
}

/// A rule nested too deeply must not make the parser stricter for the
/// rules after it.
#[test]
fn nesting_limit_resets_after_an_error() {
    let deepest = MAX_DEPTH as usize - 1;
    let text = format!(
        "{}\n{}",
        nested_rule("too_deep", deepest + 10),
        nested_rule("deepest_allowed", deepest)
    );
    let sources = [Source { name: "deep.yaral", text: &text }];
    let errors = Engine::load(&sources).expect_err("the first rule is too deep");
    let rules: Vec<Option<&str>> = errors.iter().map(|e| e.diag.rule.as_deref()).collect();
    assert_eq!(rules, [Some("too_deep")], "{errors:#?}");
}

/// With several sources, each error names its own source, and a rule name
/// taken in one source is a duplicate in the next.
#[test]
fn errors_name_their_source() {
    let first = rule_text("shared", "$e.principal.hostname = \"a\"");
    let second = rule_text("shared", "$e.principal.hostname = \"b\"")
        + &rule_text("other", "$e.principal.hostname = @b");
    let sources = [
        Source { name: "first.yaral", text: &first },
        Source { name: "second.yaral", text: &second },
    ];
    let errors = Engine::load(&sources).expect_err("a duplicate and a stray character");
    let rendered: Vec<String> = errors.iter().map(|e| sources[e.source].render(&e.diag)).collect();
    let in_sources: Vec<usize> = errors.iter().map(|e| e.source).collect();
    assert_eq!(in_sources, [1, 1], "{rendered:#?}");
    assert_eq!(
        rendered,
        [
            "error[E0301]: expected a unique rule name, found a second `shared`\n  --> \
             second.yaral:1:6 in rule `shared`\n  |\n1 | rule shared {\n  |      ^^^^^^\n",
            "error[E0101]: unexpected `@`\n  --> second.yaral:9:29\n  |\n9 |     \
             $e.principal.hostname = @b\n  |                             ^\n",
        ]
    );
}
