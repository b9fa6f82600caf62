//! What the machine is and how busy it was: cores, kernel, CPU model, load
//! average, and CPU time used by this process and by a server process
//! (`/proc/<pid>/stat`), printed with every result so figures can be judged.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu_model: String,
    /// 1, 5 and 15-minute load averages when the run started.
    pub loadavg: [f64; 3],
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let mut loadavg = [0.0; 3];
        for (slot, v) in loadavg
            .iter_mut()
            .zip(read("/proc/loadavg").split_whitespace())
        {
            *slot = v.parse().unwrap_or(0.0);
        }
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            loadavg,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), Linux {}, load average {:.2} {:.2} {:.2}",
            self.cores,
            self.cpu_model,
            self.kernel,
            self.loadavg[0],
            self.loadavg[1],
            self.loadavg[2]
        )
    }
}

/// CPU time (user + system) this process has used, in seconds.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU time (user + system) process `pid` has used, in seconds; `None` when it
/// cannot be read (another user's process, or it exited).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / if hz > 0 { hz as f64 } else { 100.0 })
}
