//! The short fuzz run `make test` does: every target, the corpus and
//! 20,000 mutations of it each, with no panic (and no stack overflow,
//! which would abort this process). Longer runs: `make fuzz`.

use fuzz::{Target, corpus, fuzz};

#[test]
fn no_input_panics_a_target() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in Target::ALL {
        let seeds = corpus(target, &dir);
        assert!(seeds.len() > 3, "{}: the corpus is missing", target.name());
        let found = fuzz(target, &seeds, 20_000, 7);
        assert!(
            found.crashes.is_empty(),
            "{}: {} inputs panicked, e.g. {:?}",
            target.name(),
            found.crashes.len(),
            String::from_utf8_lossy(&found.crashes[0])
        );
    }
}

#[test]
fn the_harness_finds_a_panicking_input() {
    // A check that panics on inputs holding `!`: mutations insert one.
    let seeds = vec![b"{\"type\":\"ping\"}".to_vec(), b"[1,2,3]".to_vec()];
    let found = fuzz::fuzz_with(
        |input| assert!(!input.contains(&b'!'), "finding"),
        &seeds,
        20_000,
        3,
    );
    assert_eq!(found.executions, 20_002);
    assert!(!found.crashes.is_empty());
    assert!(found.crashes.iter().all(|c| c.contains(&b'!')));
}
