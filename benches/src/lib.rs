//! Shared pieces of Tripline's benchmarks: generated events, the plain
//! native filter every figure is a ratio to, and reading criterion's
//! estimates back to print those ratios.

use std::path::Path;

mod plain;
pub use plain::{PlainFilter, DEFAULT_RULE};

/// Deterministic CloudTrail records of about 1.4 KB, every `match_every`-th
/// one a call the default rule tags.
pub fn cloudtrail_events(count: usize, match_every: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (source, name) = if match_every > 0 && i % match_every == 0 {
            ("iam.amazonaws.com", "CreateAccessKey")
        } else {
            ["ec2.amazonaws.com", "s3.amazonaws.com", "sts.amazonaws.com"]
                .into_iter()
                .zip(["DescribeInstances", "GetObject", "GetCallerIdentity"])
                .nth((seed % 3) as usize)
                .unwrap()
        };
        let ip = format!("198.51.{}.{}", (seed >> 8) % 256, (seed >> 16) % 256);
        let event = serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE{:08X}:session-{i}", seed as u32),
                "arn": format!(
                    "arn:aws:sts::111122223333:assumed-role/deploy-{}/session-{i}",
                    seed % 17
                ),
                "accountId": "111122223333",
                "accessKeyId": format!("ASIAEXAMPLE{:09}", seed % 1_000_000_000),
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": "AROAEXAMPLEROLE",
                        "arn": format!("arn:aws:iam::111122223333:role/deploy-{}", seed % 17),
                        "accountId": "111122223333",
                        "userName": format!("deploy-{}", seed % 17)
                    },
                    "attributes": {
                        "creationDate": "2026-11-30T08:00:00Z",
                        "mfaAuthenticated": "false"
                    }
                }
            },
            "eventTime": format!("2026-11-30T09:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            "eventSource": source,
            "eventName": name,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": ip,
            "userAgent": concat!(
                "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 ",
                "prompt/off command/iam"
            ),
            "requestParameters": {"userName": format!("svc-{}", seed % 101), "maxResults": 100},
            "responseElements": {
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLERESPONSE",
                    "expiration": "Nov 30, 2026, 10:00:00 AM"
                }
            },
            "requestID": format!("{:016x}-req", seed),
            "eventID": format!("{:016x}-evt", seed.rotate_left(17)),
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "111122223333",
            "eventCategory": "Management",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": source
            }
        });
        serde_json::to_writer(&mut out, &event).unwrap();
        out.push(b'\n');
    }
    out
}

/// `count` CloudTrail records padded to about `size` bytes each with extra
/// request parameters, the way large real records carry policy documents.
pub fn sized_events(count: usize, size: usize) -> Vec<u8> {
    let base = cloudtrail_events(count, 10);
    let mut out = Vec::with_capacity(count * (size + 64));
    for line in base.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut event: serde_json::Value = serde_json::from_slice(line).unwrap();
        if size < line.len() {
            // Small events: keep only what the rule reads and a little more.
            let keep = ["eventVersion", "eventSource", "eventName", "sourceIPAddress", "eventTime"];
            let obj = event.as_object_mut().unwrap();
            let arn = obj["userIdentity"]["arn"].clone();
            obj.retain(|k, _| keep.contains(&k.as_str()));
            obj.insert("userIdentity".into(), serde_json::json!({"arn": arn}));
            obj.insert("requestParameters".into(), serde_json::json!({}));
        }
        let len = serde_json::to_vec(&event).unwrap().len();
        let params = event["requestParameters"].as_object_mut().unwrap();
        let mut added = 0;
        for i in 0.. {
            let value = format!("value-{i:04}-{}", "x".repeat(40));
            // `,"paramNNNN":"` and the closing quote.
            let member = value.len() + 15;
            if len + added + member > size {
                break;
            }
            added += member;
            params.insert(format!("param{i:04}"), value.into());
        }
        serde_json::to_writer(&mut out, &event).unwrap();
        out.push(b'\n');
    }
    out
}

/// The mean time per iteration of benchmark `id` (as `group/function`),
/// in nanoseconds, from criterion's estimates under `dir`.
pub fn mean_ns(dir: &Path, id: &str) -> Option<f64> {
    let path = dir.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["mean"]["point_estimate"].as_f64()
}
