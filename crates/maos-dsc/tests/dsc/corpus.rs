//! The pre-filter against a corpus of injection strings and benign tool
//! arguments (tests/corpus/). Goals: detection ≥ 90 %, false positives ≤ 5 %.
//! The measured rates are reported in docs/prefilter.md.

use maos_dsc::prefilter::{DEFAULT_PATTERNS, Prefilter};

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("\\n", "\n"))
        .collect()
}

#[test]
fn prefilter_corpus_detection_and_false_positive_rates() {
    let pf = Prefilter::compile(DEFAULT_PATTERNS).unwrap();
    let attacks = lines(include_str!("../corpus/injection.txt"));
    let benign = lines(include_str!("../corpus/benign.txt"));
    assert!(attacks.len() >= 40 && benign.len() >= 40, "corpus too small");
    let missed: Vec<&String> = attacks.iter().filter(|a| pf.scan_text(a).is_none()).collect();
    let flagged: Vec<(&String, String)> = benign.iter().filter_map(|b| pf.scan_text(b).map(|h| (b, h.id))).collect();
    let detection_pct = (attacks.len() - missed.len()) * 100 / attacks.len();
    let fp_pct_x10 = flagged.len() * 1000 / benign.len();
    println!(
        "prefilter corpus: {} attacks, detected {} ({}%); {} benign, flagged {} ({}.{}%)",
        attacks.len(),
        attacks.len() - missed.len(),
        detection_pct,
        benign.len(),
        flagged.len(),
        fp_pct_x10 / 10,
        fp_pct_x10 % 10
    );
    println!("missed: {missed:#?}\nfalse positives: {flagged:#?}");
    assert!((attacks.len() - missed.len()) * 10 >= attacks.len() * 9, "detection below 90%: {missed:#?}");
    assert!(flagged.len() * 20 <= benign.len(), "false positives above 5%: {flagged:#?}");
}
