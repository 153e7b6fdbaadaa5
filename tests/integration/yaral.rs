//! YARA-L features end to end through the component: reference lists from
//! files, outcomes in the tag, the evaluation time, and rules that need
//! windowed evaluation.

use crate::support::*;

/// A CloudTrail call the T1059.009 rule flags, by `actor`.
fn create_access_key(actor: &str) -> String {
    format!(
        concat!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"AssumedRole","arn":"{}"}},"#,
            r#""eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","#,
            r#""sourceIPAddress":"198.51.100.7","awsRegion":"eu-west-1"}}"#
        ),
        actor
    )
}

#[test]
fn the_tuned_rule_skips_listed_automation() {
    let human = create_access_key("arn:aws:iam::111122223333:user/dev-alice");
    let terraform =
        create_access_key("arn:aws:sts::111122223333:assumed-role/terraform-apply/session-1");
    let org = create_access_key(
        "arn:aws:sts::444455556666:assumed-role/OrganizationAccountAccessRole/admin",
    );
    let input = format!("{human}\n{terraform}\n{org}\n");
    let args = [
        "--rules",
        "rules/tuned/cloud_api_abuse_t1059_009.yaral",
        "--list",
        "t1059_009_automation=rules/lists/t1059_009_automation.txt",
    ];
    let out = run_ok(&args, input.as_bytes());
    let got = lines(&out.stdout);
    assert_eq!(tagged_rules(got[0], "detections"), ["cloud_api_abuse_t1059_009_tuned"]);
    assert!(tagged_rules(got[1], "detections").is_empty());
    assert!(tagged_rules(got[2], "detections").is_empty());
}

#[test]
fn outcomes_and_the_evaluation_time_reach_the_tag() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rule = dir.join("outcome-rule.yaral");
    std::fs::write(
        &rule,
        r#"rule scored {
  meta:
    severity = "HIGH"
  events:
    $e.metadata.product_event_type = "CreateAccessKey"
    $e.principal.ip = $ip
  outcome:
    $risk_score = max(50 + if($e.principal.location.name = "eu-west-1", 25))
    $regions = array_distinct($e.principal.location.name)
    $age_ok = timestamp.current_seconds() > 1700000000
  condition:
    $e and $risk_score > 60
}
"#,
    )
    .unwrap();
    let input = format!("{}\n", create_access_key("arn:aws:iam::1:user/a"));
    let out = run_ok(&["--rules", rule.to_str().unwrap()], input.as_bytes());
    let tagged = lines(&out.stdout)[0];
    let value: serde_json::Value = serde_json::from_slice(tagged).unwrap();
    let expected = serde_json::json!([{
        "rule": "scored",
        "severity": "HIGH",
        "mitre_attack_tactic": null,
        "mitre_attack_technique": null,
        "variables": {"ip": "198.51.100.7"},
        "outcomes": {"risk_score": 75, "regions": ["eu-west-1"], "age_ok": true},
    }]);
    assert_eq!(value["detections"], expected);
}

#[test]
fn windowed_rules_load_and_are_reported() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rule = dir.join("windowed-rule.yaral");
    std::fs::write(
        &rule,
        r#"rule burst {
  events:
    $e.metadata.product_event_type = "CreateAccessKey"
    $e.principal.ip = $ip
  match:
    $ip over 5m
  condition:
    #e > 10
}
"#,
    )
    .unwrap();
    let input = format!("{}\n", create_access_key("arn:aws:iam::1:user/a"));
    let out = run_ok(&["--rules", rule.to_str().unwrap()], input.as_bytes());
    assert!(tagged_rules(lines(&out.stdout)[0], "detections").is_empty());
    let err = stderr(&out);
    assert!(err.contains("rule `burst` needs windowed evaluation"), "{err}");

    let info = tripline().args(["info", "--rules", rule.to_str().unwrap()]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let why = doc["rules"][0]["windowed"].as_str().unwrap();
    assert!(why.contains("counts events"), "{why}");
}
