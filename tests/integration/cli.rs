//! `tripline run`, `info` and `check` as a user calls them.

use crate::support::*;

const CREATE_USER: &str = concat!(
    r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","#,
    r#""arn":"arn:aws:iam::111122223333:user/alice"},"eventTime":"2024-05-01T10:00:00Z","#,
    r#""eventSource":"iam.amazonaws.com","eventName":"CreateUser","#,
    r#""sourceIPAddress":"198.51.100.7","requestParameters":{"userName":"bob"}}"#,
);
const LIST_USERS: &str = concat!(
    r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","#,
    r#""arn":"arn:aws:iam::111122223333:user/alice"},"eventTime":"2024-05-01T10:00:01Z","#,
    r#""eventSource":"iam.amazonaws.com","eventName":"ListUsers","#,
    r#""sourceIPAddress":"198.51.100.7"}"#,
);

fn input(lines: &[&str]) -> Vec<u8> {
    lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect()
}

#[test]
fn tags_matches_and_forwards_the_rest_byte_for_byte() {
    let out = run_ok(&[], &input(&[LIST_USERS, CREATE_USER, LIST_USERS]));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], LIST_USERS.as_bytes());
    assert_eq!(got[2], LIST_USERS.as_bytes());

    // The tagged line is the original with one member appended.
    let tagged = std::str::from_utf8(got[1]).unwrap();
    assert!(tagged.starts_with(&CREATE_USER[..CREATE_USER.len() - 1]), "{tagged}");
    let value: serde_json::Value = serde_json::from_str(tagged).unwrap();
    let expected = serde_json::json!([{
        "rule": "cloud_api_abuse_t1059_009",
        "severity": "HIGH",
        "mitre_attack_tactic": "Execution",
        "mitre_attack_technique": "T1059.009",
        "variables": {"src_ip": "198.51.100.7", "actor": "arn:aws:iam::111122223333:user/alice"},
    }]);
    assert_eq!(value["detections"], expected);
    assert!(stderr(&out).contains("3 events read, 1 tagged, 0 errored"), "{}", stderr(&out));
}

#[test]
fn tag_field_only_matches_and_output_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("cli-output.ndjson");
    let path_str = path.to_str().unwrap();
    let args = ["--tag-field", "tripline", "--only-matches", "--output", path_str];
    let out = run_ok(&args, &input(&[LIST_USERS, CREATE_USER]));
    assert!(out.stdout.is_empty());
    let written = std::fs::read(&path).unwrap();
    let got = lines(&written);
    assert_eq!(got.len(), 1);
    assert_eq!(tagged_rules(got[0], "tripline"), ["cloud_api_abuse_t1059_009"]);
    assert!(tagged_rules(got[0], "detections").is_empty());
}

#[test]
fn bad_lines_are_forwarded_unchanged_and_counted() {
    let bad = ["", "not json", r#"{"eventName":"CreateUser""#, "[1,2]", r#"{"a":1,}"#];
    let mut all = vec![CREATE_USER];
    all.extend(bad);
    all.push(CREATE_USER);
    let out = run_ok(&[], &input(&all));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), all.len());
    for (i, line) in bad.iter().enumerate() {
        assert_eq!(got[i + 1], line.as_bytes());
    }
    assert_eq!(tagged_rules(got[6], "detections").len(), 1);
    let err = stderr(&out);
    assert!(err.contains("7 events read, 2 tagged, 5 errored"), "{err}");
    assert!(err.contains("malformed 3, not an object 1, empty 1"), "{err}");
    // Problems name the input, the line and, for JSON errors, the column.
    assert!(err.contains("<stdin>:3:1: malformed JSON"), "{err}");
    assert!(err.contains("<stdin>:6:8: malformed JSON"), "{err}");
}

#[test]
fn strict_fails_at_the_first_bad_event() {
    let data = input(&[CREATE_USER, "{oops", CREATE_USER]);
    let out = run_with_input(tripline().args(["run", "--strict"]), &data);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("<stdin>:2:2: malformed JSON") && err.contains("--strict"), "{err}");
}

#[test]
fn crlf_lines_and_a_missing_final_newline() {
    let data = format!("{LIST_USERS}\r\n{CREATE_USER}\r\n{CREATE_USER}");
    let out = run_ok(&[], data.as_bytes());
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], format!("{LIST_USERS}\r").as_bytes());
    assert!(got[1].ends_with(b"}]}\r"), "{}", String::from_utf8_lossy(got[1]));
    assert_eq!(tagged_rules(got[1].strip_suffix(b"\r").unwrap(), "detections").len(), 1);
    assert_eq!(tagged_rules(got[2], "detections").len(), 1);
}

#[test]
fn long_lines_pass_through_unevaluated() {
    let long = format!(
        r#"{{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let data = input(&[CREATE_USER, &long, CREATE_USER]);
    let out = run_ok(&["--max-event-bytes", "1000"], &data);
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], long.as_bytes());
    assert_eq!(tagged_rules(got[0], "detections").len(), 1);
    assert_eq!(tagged_rules(got[2], "detections").len(), 1);
    let err = stderr(&out);
    assert!(
        err.contains("too large 1") && err.contains("<stdin>:2: event longer than 1000 bytes"),
        "{err}"
    );
}

#[test]
fn files_and_stdin_are_read_in_order() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let a = dir.join("cli-a.ndjson");
    std::fs::write(&a, input(&[CREATE_USER])).unwrap();
    let a = a.to_str().unwrap();
    let out = run_ok(&[a, "-", a], &input(&[LIST_USERS]));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], LIST_USERS.as_bytes());
    assert_eq!(tagged_rules(got[2], "detections").len(), 1);
}

#[test]
fn batches_of_any_size_give_the_same_output() {
    let mut events = Vec::new();
    for i in 0..50 {
        events.push(if i % 3 == 0 { CREATE_USER } else { LIST_USERS });
    }
    let data = input(&events);
    let whole = run_ok(&[], &data).stdout;
    for size in ["1", "7", "49", "50"] {
        assert_eq!(run_ok(&["--batch-events", size], &data).stdout, whole, "batch of {size}");
    }
    assert_eq!(run_ok(&["--batch-bytes", "300"], &data).stdout, whole);
}

#[test]
fn workers_keep_input_order() {
    // Distinct events, so that any reordering shows: every third one is
    // tagged and every tenth is unreadable.
    let mut data = Vec::new();
    for i in 0..600 {
        let line = match i {
            i if i % 10 == 9 => format!("{{\"broken\":{i}"),
            i if i % 3 == 0 => CREATE_USER.replace("bob", &format!("user-{i}")),
            i => LIST_USERS.replace("10:00:01", &format!("10:{:02}:{:02}", i / 60, i % 60)),
        };
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    let one = run_ok(&["--workers", "1", "--batch-events", "3"], &data);
    assert_eq!(lines(&one.stdout).len(), 600);
    let summary = stderr(&one);
    let summary = summary.lines().last().unwrap().to_string();
    assert!(summary.contains("600 events read, 180 tagged, 60 errored"), "{summary}");
    for workers in ["2", "4"] {
        let many = run_ok(&["--workers", workers, "--batch-events", "3"], &data);
        assert!(one.stdout == many.stdout, "--workers {workers} changed the output");
        assert!(stderr(&many).ends_with(&format!("{summary}\n")), "{}", stderr(&many));
    }
}

#[test]
fn workers_must_be_at_least_one() {
    let out = run_with_input(tripline().args(["run", "--workers", "0"]), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--workers must be at least 1"), "{}", stderr(&out));
}

#[test]
fn empty_input_gives_empty_output() {
    let out = run_ok(&[], b"");
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("0 events read"));
}

#[test]
fn info_describes_the_rules() {
    let out = tripline().arg("info").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = &doc["rules"][0];
    assert_eq!(rule["name"], "cloud_api_abuse_t1059_009");
    assert_eq!(rule["meta"]["mitre_attack_technique"], "T1059.009");
    assert_eq!(rule["placeholders"], serde_json::json!(["src_ip", "actor"]));
    assert_eq!(doc["rules"].as_array().unwrap().len(), 1);
}

#[test]
fn rules_replace_the_built_in_pack() {
    let out = tripline()
        .args(["info", "--rules", "rules/seed/suspicious_cloud_api_abuse_t1059_009.yaral"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rules"][0]["name"], "suspicious_cloud_api_abuse_t1059_009");
    assert_eq!(doc["rules"].as_array().unwrap().len(), 1);
}

#[test]
fn check_accepts_the_shipped_rules() {
    let out = tripline()
        .args(["check", "rules/default/cloud_api_abuse_t1059_009.yaral"])
        .arg("rules/seed/suspicious_cloud_api_abuse_t1059_009.yaral")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report = String::from_utf8_lossy(&out.stdout);
    // The seed reads API actions from target.resource.name only, the flaw
    // the default rule corrects; `check` says so about the seed alone.
    assert!(report.ends_with("2 rule(s) in 2 file(s): ok, 1 warning(s)\n"), "{report}");
    assert!(
        report.contains("warning[W0404]")
            && report.contains("rules/seed/suspicious_cloud_api_abuse_t1059_009.yaral:21:1"),
        "{report}"
    );
}

#[test]
fn check_and_run_report_rule_errors_with_their_place() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bad = dir.join("bad.yaral");
    let text = "rule broken {\n  events:\n    $e.metadata.product_name = \"x\" oops\n  \
                condition:\n    $e\n}\n";
    std::fs::write(&bad, text).unwrap();
    let bad = bad.to_str().unwrap();

    let out = tripline().args(["check", bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    let expected = [
        "error[E0201]: expected a predicate such as `$e.field = \"value\"` or `re.regex(...)`",
        &format!("  --> {bad}:3:36 in rule `broken`"),
        "  |",
        "3 |     $e.metadata.product_name = \"x\" oops",
        "  |                                    ^^^^",
        "",
    ]
    .join("\n");
    assert!(report.starts_with(&expected), "{report}");

    let out = run_with_input(tripline().args(["run", "--rules", bad]), b"{}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}
