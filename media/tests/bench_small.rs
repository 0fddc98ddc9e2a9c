//! The media benchmark, small (`bench-media --calls 4 --seconds 1`), as CI runs it: every
//! figure it prints is a number, and every call connected and carried audio.

#[test]
fn the_media_benchmark_runs_small_and_prints_numbers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-media"))
        .args(["--calls", "4", "--seconds", "1"])
        .output()
        .expect("run bench-media");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("| peers connected | 8 of 8"), "{text}");
    let value = |row: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("| {row}")))
            .unwrap_or_else(|| panic!("no row {row:?} in:\n{text}"));
        let cell = line.rsplit('|').nth(1).unwrap_or("").trim();
        cell.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{row}: {cell:?} is not a number"))
    };
    assert!(value("memory per peer") > 0.0, "{text}");
    assert!(value("CPU per call") > 0.0, "{text}");
    // 6 s sent per peer (1 measured + 1 settling + the 5 s tail): most of it arrives.
    assert!(value("audio heard") > 3.0, "{text}");
}
