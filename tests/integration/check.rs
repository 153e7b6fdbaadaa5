//! `tripline check` against golden files in `tests/check/`: for each
//! `NAME.yaral`, `NAME.expected` holds what `tripline check NAME.yaral`
//! prints (errors and warnings with their carets, then a summary) and
//! `NAME.status` its exit status. `TRIPLINE_BLESS=1` rewrites both; read
//! every rewritten file before keeping it.

use std::fs;

use crate::support::*;

#[test]
fn check_output_matches_golden_files() {
    let dir = root().join("tests/check");
    let bless = std::env::var("TRIPLINE_BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".yaral")?.to_string())
        })
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut problems = Vec::new();
    for name in &names {
        let file = format!("tests/check/{name}.yaral");
        let out = tripline().args(["check", &file]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = format!("{}\n", out.status.code().unwrap_or(-1));
        let expected = dir.join(format!("{name}.expected"));
        let expected_status = dir.join(format!("{name}.status"));
        if bless {
            fs::write(&expected, &stdout).unwrap();
            fs::write(&expected_status, &status).unwrap();
            continue;
        }
        let want = fs::read_to_string(&expected).unwrap_or_default();
        let want_status = fs::read_to_string(&expected_status).unwrap_or_default();
        if want != stdout || want_status != status {
            problems.push(format!(
                "{file}: expected status {want_status}and output\n{want}\nfound status \
                 {status}and output\n{stdout}\nstderr: {}",
                stderr(&out)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_rule_naming_an_absent_list_does_not_load() {
    let rule = "rules/tuned/cloud_api_abuse_t1059_009.yaral";
    let out = tripline().args(["check", rule]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[E0310]") && text.contains("%t1059_009_automation"), "{text}");

    let list = "t1059_009_automation=rules/lists/t1059_009_automation.txt";
    let out = tripline().args(["check", rule, "--list", list]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
