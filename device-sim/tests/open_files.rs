//! A fleet raises its own open-file limit (issue 17: not by hand): in a process whose soft
//! limit is low, `raise_open_file_limit` lifts it to what the boards need, up to the hard limit,
//! and says what to do when the hard limit itself is too low. Its own test binary, because it
//! changes the process's limits.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use rlimit::Resource;

#[test]
fn a_fleet_raises_a_low_soft_limit_and_names_a_low_hard_one() {
    let (_, hard) = Resource::NOFILE.get().unwrap();
    Resource::NOFILE.set(256, hard).unwrap();
    let boards = (hard.min(10_000) as usize).saturating_sub(64);
    assert_eq!(device_sim::raise_open_file_limit(boards), None);
    let (soft, _) = Resource::NOFILE.get().unwrap();
    assert!(
        soft >= boards as u64 + 64,
        "soft {soft} for {boards} boards"
    );
    // More than the hard limit allows: a warning that says what to do, and the most it can get.
    let warning = device_sim::raise_open_file_limit(hard as usize).unwrap();
    assert!(warning.contains("hard limit"), "{warning}");
    assert_eq!(Resource::NOFILE.get().unwrap().0, hard);
}
