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
fn an_absent_list_is_a_warning_for_check_and_an_error_for_run() {
    let rule = "rules/tuned/cloud_api_abuse_t1059_009.yaral";
    let list = "t1059_009_automation=rules/lists/t1059_009_automation.txt";

    // `check` looks at the rule; the list is data that only a run needs.
    let out = tripline().args(["check", rule]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning[W0406]") && text.contains("%t1059_009_automation"), "{text}");
    let out = tripline().args(["check", rule, "--list", list]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.ends_with("ok, 0 warning(s)\n"), "{text}");

    // A run cannot go without it.
    let out = run_with_input(tripline().args(["run", "--rules", rule]), b"{}\n");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error[E0310]") && err.contains("%t1059_009_automation"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn data_tables_are_read_from_csv_by_column() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rule = dir.join("table-rule.yaral");
    let text = "rule listed_admin {\n  events:\n    $e.principal.user.userid in %admins.arn\n  \
                condition:\n    $e\n}\n";
    std::fs::write(&rule, text).unwrap();
    let table = dir.join("admins.csv");
    std::fs::write(
        &table,
        "name,arn\nalice,arn:aws:iam::1:user/alice\nbob,\"arn:aws:iam::1:user/b,c\"\n",
    )
    .unwrap();
    let (rule, table) = (rule.to_str().unwrap(), table.to_str().unwrap());
    let events = concat!(
        r#"{"eventName":"ListUsers","eventSource":"iam.amazonaws.com","#,
        r#""userIdentity":{"arn":"arn:aws:iam::1:user/b,c"}}"#,
        "\n",
        r#"{"eventName":"ListUsers","eventSource":"iam.amazonaws.com","#,
        r#""userIdentity":{"arn":"arn:aws:iam::1:user/carol"}}"#,
        "\n",
    );
    let table_arg = format!("admins={table}");
    let out = run_ok(&["--rules", rule, "--table", &table_arg], events.as_bytes());
    let got = lines(&out.stdout);
    assert_eq!(tagged_rules(got[0], "detections"), ["listed_admin"]);
    assert!(tagged_rules(got[1], "detections").is_empty());

    // A table that cannot be read is refused with its line.
    std::fs::write(dir.join("bad.csv"), "name,arn\nalice\n").unwrap();
    let bad = format!("admins={}", dir.join("bad.csv").display());
    let out = run_with_input(tripline().args(["run", "--rules", rule, "--table", &bad]), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 2: expected 2 fields"), "{}", stderr(&out));
}
