//! CPU time of the processes a burst keeps busy: the operator, and the local cluster's
//! kube-apiserver and etcd (read from /proc; other clusters on the machine are told apart by the
//! kubeconfig's server port and the API server's --etcd-servers).

use std::path::Path;

use kube::config::Kubeconfig;

/// Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The processes watched; None where one was not found.
pub struct Cpu {
    pids: [Option<u32>; 3],
}

/// CPU seconds (user + system) so far of the operator, kube-apiserver and etcd.
#[derive(Clone, Copy)]
pub struct Sample([Option<f64>; 3]);

impl Cpu {
    pub fn find(kubeconfig: &Path, operator: Option<u32>) -> Self {
        let port = api_port(kubeconfig);
        let commands = commands();
        let apiserver = port.and_then(|port| {
            let flag = format!("--secure-port={port}");
            commands.iter().find(|(_, args)| {
                args.first().is_some_and(|a| a.ends_with("kube-apiserver")) && args.contains(&flag)
            })
        });
        // `--etcd-servers=http://127.0.0.1:32758` → etcd listening on that URL.
        let etcd_url = apiserver.and_then(|(_, args)| {
            args.iter()
                .find_map(|a| a.strip_prefix("--etcd-servers="))
                .map(|urls| urls.split(',').next().unwrap_or_default().to_owned())
        });
        let etcd = etcd_url.and_then(|url| {
            commands.iter().find(|(_, args)| {
                args.first().is_some_and(|a| a.ends_with("etcd"))
                    && args.iter().any(|a| {
                        a.strip_prefix("--listen-client-urls=")
                            .is_some_and(|urls| urls.split(',').any(|u| u == url))
                    })
            })
        });
        Self {
            pids: [operator, apiserver.map(|(p, _)| *p), etcd.map(|(p, _)| *p)],
        }
    }

    pub fn sample(&self) -> Sample {
        Sample(self.pids.map(|pid| pid.and_then(cpu_seconds)))
    }
}

impl Sample {
    /// "operator X s, kube-apiserver Y s, etcd Z s" used since `before`.
    pub fn since(&self, before: &Sample) -> String {
        let names = ["operator", "kube-apiserver", "etcd"];
        (0..3)
            .map(|i| match (self.0[i], before.0[i]) {
                (Some(now), Some(then)) => format!("{} {:.1} s", names[i], now - then),
                _ => format!("{} not found", names[i]),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The port of the current context's API server.
fn api_port(kubeconfig: &Path) -> Option<u16> {
    let config = Kubeconfig::read_from(kubeconfig).ok()?;
    let context = config.current_context.as_ref()?;
    let cluster = config
        .contexts
        .iter()
        .find(|c| &c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let server = config
        .clusters
        .iter()
        .find(|c| c.name == cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()?;
    server
        .rsplit_once(':')?
        .1
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// Every process's pid and arguments.
fn commands() -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with field 3, `state`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / TICKS_PER_SEC)
}
