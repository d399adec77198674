//! This machine as the coordinator sees it: identity (host name, platform, arch,
//! addresses) and the usage figures sent with each heartbeat.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The original's platform names: macos, windows, linux.
pub fn platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "macos",
        "windows" => "windows",
        _ => "linux",
    }
}

/// The original's arch names: x64, arm64, x86, arm; others as Rust calls them.
pub fn arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "x64".into(),
        "aarch64" => "arm64".into(),
        "x86" => "x86".into(),
        a if a.starts_with("arm") => "arm".into(),
        a => a.into(),
    }
}

/// The host name (or "localhost" when the OS does not say).
pub fn hostname() -> String {
    sysinfo::System::host_name().ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "localhost".into())
}

/// The local address this machine uses to reach `target` (no packet is sent: a UDP
/// socket is connected only to ask the routing table).
pub fn local_address_towards(target: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// An interface address in Tailscale's range (100.64.0.0/10), if there is one.
pub fn tailscale_address() -> Option<IpAddr> {
    let networks = sysinfo::Networks::new_with_refreshed_list().ok()?;
    networks
        .values()
        .flat_map(|n| n.ip_networks().iter().map(|ip| ip.addr))
        .find(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64))
}

/// Samples CPU, memory and disk usage. Keeps state between samples (CPU usage is a
/// difference between two readings).
pub struct Usage {
    system: Option<sysinfo::System>,
    /// Listed once; each reading refreshes the figures.
    disks: Option<sysinfo::Disks>,
    disk_path: PathBuf,
}

/// One reading, in percent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub cpu: f64,
    pub memory: f64,
    pub disk: f64,
}

impl Usage {
    /// Disk usage is measured on the volume holding `disk_path` (the skills dir).
    pub fn new(disk_path: &Path) -> Usage {
        let mut system = sysinfo::System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_cpu_usage();
        }
        let disk_path = std::fs::canonicalize(disk_path).unwrap_or_else(|_| disk_path.to_path_buf());
        Usage { system, disks: sysinfo::Disks::new_with_refreshed_list().ok(), disk_path }
    }

    /// A reading now. Figures the OS will not give are 0.
    pub fn read(&mut self) -> Reading {
        let mut reading = Reading::default();
        if let Some(s) = self.system.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
            reading.cpu = clamp(f64::from(s.global_cpu_usage()));
            if s.total_memory() > 0 {
                reading.memory = clamp(s.used_memory() as f64 / s.total_memory() as f64 * 100.0);
            }
        }
        if let Some(disks) = self.disks.as_mut() {
            disks.refresh(false);
            reading.disk = disk_usage(disks, &self.disk_path);
        }
        reading
    }
}

fn clamp(v: f64) -> f64 {
    if v.is_finite() { (v.clamp(0.0, 100.0) * 100.0).round() / 100.0 } else { 0.0 }
}

/// Percent used of the volume whose mount point is the longest prefix of `path`.
fn disk_usage(disks: &sysinfo::Disks, path: &Path) -> f64 {
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .filter(|d| d.total_space() > 0)
        .map(|d| clamp((d.total_space() - d.available_space()) as f64 / d.total_space() as f64 * 100.0))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_percentages() {
        let mut usage = Usage::new(Path::new("."));
        let r = usage.read();
        for v in [r.cpu, r.memory, r.disk] {
            assert!((0.0..=100.0).contains(&v), "{r:?}");
        }
        assert!(r.memory > 0.0, "a running machine uses some memory: {r:?}");
        assert!(r.disk > 0.0, "the volume holding this folder holds at least this file: {r:?}");
    }

    #[test]
    fn loopback_route_is_loopback() {
        let ip = local_address_towards("127.0.0.1:9".parse().unwrap()).unwrap();
        assert!(ip.is_loopback());
    }
}
