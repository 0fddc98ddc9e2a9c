//! CI's short run of `axon-device-sim hostile` (issue 15): 20,000 generated inputs, a fixed
//! seed, no panic and no unclear outcome. The full run is `axon-device-sim hostile` (1,000,000
//! inputs; docs/security.md "Hostile input").

use std::time::Instant;

use device_sim::hostile::{self, Family};

#[test]
fn twenty_thousand_hostile_inputs_all_get_a_clear_outcome() {
    let start = Instant::now();
    let report = hostile::run(20_000, 15, |_, _| {});
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| {
            format!(
                "{} input {} (--family {} --input-seed {}): {}\n  {}",
                f.family.name(),
                f.index,
                f.family.name(),
                f.input_seed,
                f.what,
                f.reproducer
            )
        })
        .collect();
    assert_eq!(
        report.bad(),
        0,
        "\n{}\n{}",
        report.table(),
        failures.join("\n")
    );
    assert_eq!(report.inputs(), 20_000);
    for f in Family::ALL {
        let t = &report.families[&f];
        assert_eq!(t.inputs, 5_000, "{}", f.name());
        // Each family reaches both well-formed and refused inputs, or its oracle proves little.
        assert!(
            t.accepted > 100 && t.errors > 100,
            "{}\n{}",
            f.name(),
            report.table()
        );
        if f != Family::Args {
            assert!(t.ignored > 100, "{}\n{}", f.name(), report.table());
        }
    }
    eprintln!("{}\n{:.1} s", report.table(), start.elapsed().as_secs_f64());
}
