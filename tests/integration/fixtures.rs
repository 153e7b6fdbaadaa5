//! The fixture events of `tests/fixtures/t1059_009` under both rules: the
//! seed's rule verbatim and the corrected default, loaded together.

use crate::support::*;

const DEFAULT: &str = "cloud_api_abuse_t1059_009";
const SEED: &str = "suspicious_cloud_api_abuse_t1059_009";

#[test]
fn both_rules_over_the_fixture_events() {
    let dir = root().join("tests/fixtures/t1059_009");
    let events = std::fs::read(dir.join("events.ndjson")).unwrap();
    let expected = std::fs::read_to_string(dir.join("events.expected.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = expected.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    let input = lines(&events);
    assert_eq!(input.len(), rows.len(), "one expectation per event");

    let args = [
        "--rules",
        "rules/default/cloud_api_abuse_t1059_009.yaral",
        "rules/seed/suspicious_cloud_api_abuse_t1059_009.yaral",
    ];
    let out = run_ok(&args, &events);
    let output = lines(&out.stdout);
    assert_eq!(output.len(), input.len());

    let mut wrong = Vec::new();
    let (mut errors, mut differ) = (0, 0);
    for (i, ((inp, outp), row)) in input.iter().zip(&output).zip(&rows).enumerate() {
        let [default, seed, note] = row[..] else {
            panic!("events.expected.tsv:{}: 3 columns", i + 2)
        };
        let got = tagged_rules(outp, "detections");
        let ok = if default == "error" {
            errors += 1;
            inp == outp
        } else {
            let mut want = Vec::new();
            if default == "1" {
                want.push(DEFAULT);
            }
            if seed == "1" {
                want.push(SEED);
            }
            differ += usize::from(default != seed);
            got == want && (!want.is_empty() || inp == outp)
        };
        if !ok {
            wrong.push(format!(
                "events.ndjson:{}: {note}: expected {default}/{seed}, got {got:?}",
                i + 1
            ));
        }
    }
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
    assert!(differ > 0, "the fixtures show where the two rules differ");
    let summary = stderr(&out);
    assert!(summary.contains(&format!("{errors} errored")), "{summary}");
}
