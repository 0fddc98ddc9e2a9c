//! A process's CPU time and memory, read from `/proc` (Linux), for the benchmarks that report
//! what a call costs (`bench-media`, `bench-voice`). Never used on a call's path.

/// CPU seconds (user + system) that process `pid` has used so far; 0 if it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command (which may hold spaces and parentheses): utime and stime are the
    // 12th and 13th fields, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A memory line of process `pid`'s status (`VmRSS`, `VmHWM`…), KB; 0 if it cannot be read.
pub fn memory_kb(pid: u32, field: &str) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_memory_and_reads_as_such() {
        let me = std::process::id();
        assert!(memory_kb(me, "VmRSS") > 0);
        assert!(memory_kb(me, "VmHWM") >= memory_kb(me, "VmRSS"));
        assert!(cpu_seconds(me) >= 0.0);
        assert_eq!(memory_kb(me, "NoSuchLine"), 0);
    }
}
