//! The default detection over public sample events agrees with every label
//! of `../shared/corpus/*.expected.tsv`.

use crate::support::*;

#[test]
fn default_detection_agrees_with_the_corpus_labels() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is absent, so there are no public samples to check");
        return;
    };
    let mut checked = 0;
    for name in ["cloudtrail", "azure"] {
        let events = std::fs::read(dir.join(format!("{name}.ndjson"))).unwrap();
        let labels = std::fs::read_to_string(dir.join(format!("{name}.expected.tsv"))).unwrap();
        let labels: Vec<(&str, &str)> =
            labels.lines().skip(1).map(|l| l.split_once('\t').unwrap()).collect();
        let input = lines(&events);
        assert_eq!(input.len(), labels.len(), "{name}: one label per event");

        let out = run_ok(&[dir.join(format!("{name}.ndjson")).to_str().unwrap()], b"");
        let output = lines(&out.stdout);
        assert_eq!(output.len(), input.len(), "{name}: one output line per input line");
        let mut wrong = Vec::new();
        for (i, ((inp, outp), (label, source))) in
            input.iter().zip(&output).zip(&labels).enumerate()
        {
            let ok = match *label {
                "1" => tagged_rules(outp, "detections") == ["cloud_api_abuse_t1059_009"],
                // Untagged, and so forwarded byte for byte.
                "0" | "-" => inp == outp,
                other => panic!("{name}.expected.tsv:{}: unknown label {other:?}", i + 2),
            };
            if !ok {
                wrong.push(format!("{name}.ndjson:{}: expected {label} ({source})", i + 1));
            }
            checked += 1;
        }
        assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
        assert!(stderr(&out).contains("0 errored"), "{}", stderr(&out));
    }
    assert!(checked > 800, "the corpus holds {checked} events; expected the whole of it");
}
